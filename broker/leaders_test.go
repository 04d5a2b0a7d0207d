package broker

import (
	"testing"
	"time"
)

func TestLeadersReachTheMetadata(t *testing.T) {
	b, addr := startBroker(t, nil)
	c := dial(t, addr)
	createTopic(t, c, "orders", 3)
	deadline := time.Now().Add(5 * time.Second)
	for p := range int32(3) {
		for {
			l := b.controller.Metadata().Topics["orders"].Leader(p)
			if l.Leader == 1 && l.Epoch > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %d: metadata leader %+v", p, l)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
