package cluster

import "testing"

// TestTopicConfigReset: resetting every key gives back the defaults, which
// DescribeConfigs then reports as defaults.
func TestTopicConfigReset(t *testing.T) {
	c := DefaultTopicConfig()
	for _, k := range TopicConfigKeys {
		v := map[string]string{KeyRetentionMs: "5", KeyRetentionBytes: "5", KeySegmentBytes: "8192", KeySegmentMs: "5",
			KeyMaxBytes: "5", KeyDiscard: "reject", KeyFsync: "never", KeyCompression: "zstd"}[k]
		if err := c.Set(k, &v); err != nil {
			t.Fatalf("Set(%s=%s): %v", k, v, err)
		}
	}
	d := DefaultTopicConfig()
	for _, k := range TopicConfigKeys {
		if err := c.Set(k, nil); err != nil {
			t.Fatalf("reset %s: %v", k, err)
		}
		got, _ := c.Get(k)
		want, _ := d.Get(k)
		if got != want {
			t.Errorf("%s after reset = %q, default %q", k, got, want)
		}
	}
	if err := c.Set("nope", nil); err == nil {
		t.Error("reset of an unknown key succeeded")
	}
}
