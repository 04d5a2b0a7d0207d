//go:build !race

// The race detector makes sync.Pool drop items at random, so these counts
// only hold without it.

package record

import (
	"io"
	"testing"
)

// TestSteadyStateAllocations: a reused Builder and a reused Reader do not
// allocate once their buffers have grown, with any codec; nor does Validate.
func TestSteadyStateAllocations(t *testing.T) {
	recs := benchRecords(100, 64<<10)
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			b := NewBuilder(codec)
			var batch []byte
			buildOnce := func() {
				b.Reset()
				for _, r := range recs {
					b.Append(r)
				}
				var err error
				if batch, err = b.Build(); err != nil {
					t.Fatal(err)
				}
			}
			if allocs := testing.AllocsPerRun(20, buildOnce); allocs != 0 {
				t.Errorf("Build allocates %v times a batch", allocs)
			}

			var r Reader
			readOnce := func() {
				if err := r.Reset(batch); err != nil {
					t.Fatal(err)
				}
				for {
					if _, err := r.Next(); err == io.EOF {
						break
					} else if err != nil {
						t.Fatal(err)
					}
				}
			}
			if allocs := testing.AllocsPerRun(20, readOnce); allocs != 0 {
				t.Errorf("reading allocates %v times a batch", allocs)
			}

			if allocs := testing.AllocsPerRun(20, func() {
				if _, err := Validate(batch, 0); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Errorf("Validate allocates %v times a batch", allocs)
			}
		})
	}
}
