package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := newBudget(100)
	ctx := testContext(t, 10*time.Second)
	if err := b.TryAcquire(60); err != nil {
		t.Fatal(err)
	}
	if err := b.TryAcquire(50); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("over the budget: %v", err)
	}
	granted := make(chan error, 1)
	go func() { granted <- b.Acquire(ctx, 70) }()
	waitFor(t, ctx, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 })
	// A waiter is queued: TryAcquire must not jump ahead of it.
	if err := b.TryAcquire(10); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("TryAcquire overtook a waiter: %v", err)
	}
	b.Release(60)
	if err := <-granted; err != nil {
		t.Fatal(err)
	}
	if used := b.Used(); used != 70 {
		t.Fatalf("used %d, want 70", used)
	}

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := b.Acquire(short, 50); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past its ctx: %v", err)
	}
	if used := b.Used(); used != 70 {
		t.Fatalf("used %d after a waiter gave up, want 70", used)
	}

	go func() { granted <- b.Acquire(ctx, 50) }()
	waitFor(t, ctx, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == 1 })
	b.close()
	if err := <-granted; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiter at close: %v", err)
	}
	if err := b.Acquire(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after close: %v", err)
	}
}
