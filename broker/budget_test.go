package broker

import (
	"context"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := newBudget(100)
	if !b.TryAcquire(60) || b.TryAcquire(50) || !b.TryAcquire(40) {
		t.Fatal("TryAcquire did not follow the free bytes")
	}
	got := make(chan error, 1)
	go func() { got <- b.Acquire(context.Background(), 70) }()
	// The waiter is queued; TryAcquire must not jump ahead of it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.waiters)
		b.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Acquire never queued")
		}
		time.Sleep(time.Millisecond)
	}
	b.Release(60)
	if b.TryAcquire(10) {
		t.Fatal("TryAcquire jumped the queue")
	}
	b.Release(40)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if b.InUse() != 70 {
		t.Fatalf("in use %d, want 70", b.InUse())
	}
	// A request larger than the budget is granted when all is free.
	b.Release(70)
	if !b.TryAcquire(1000) || b.InUse() != 100 {
		t.Fatalf("oversized request: in use %d", b.InUse())
	}
	// A cancelled waiter leaves the budget as it was.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Acquire(ctx, 10) }()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled Acquire returned nil")
	}
	b.Release(1000)
	if b.InUse() != 0 {
		t.Fatalf("in use %d after all released", b.InUse())
	}
}
