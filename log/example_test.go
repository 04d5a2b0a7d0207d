package log_test

import (
	"fmt"
	"os"

	"weir/log"
)

func Example() {
	dir, _ := os.MkdirTemp("", "weir-log-example")
	defer os.RemoveAll(dir)

	l, err := log.Open(dir, log.Options{Fsync: log.FsyncAlways})
	if err != nil {
		panic(err)
	}
	defer l.Close()

	// Raft assigns indexes; the log assigns record offsets.
	entries := []log.Entry{
		{Index: 1, Term: 1, Type: log.TypeControl},
		{Index: 2, Term: 1, Type: log.TypeData, Count: 3, Timestamp: 1700000000000, Payload: []byte("batch of 3")},
		{Index: 3, Term: 1, Type: log.TypeData, Count: 2, Timestamp: 1700000000500, Payload: []byte("batch of 2")},
	}
	if err := l.Append(entries); err != nil {
		panic(err)
	}

	// Find the entry holding record offset 4 and read from there on.
	idx, _ := l.IndexForOffset(4)
	r, _ := l.NewReader(idx)
	defer r.Close()
	e, _ := r.Next()
	fmt.Printf("offset 4 is in entry %d (offsets %d..%d): %s\n", e.Index, e.BaseOffset, e.NextOffset()-1, e.Payload)
	fmt.Println("next offset:", l.NextOffset())
	// Output:
	// offset 4 is in entry 3 (offsets 3..4): batch of 2
	// next offset: 5
}
