package client

import (
	"context"
	"sync"
)

// budget is a pool of bytes: the bound MaxBufferedBytes puts on the records
// a Producer holds. Acquire waits, first come first served; TryAcquire
// does not wait. After close, waiters and new acquires fail with ErrClosed.
type budget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters []*budgetWaiter // oldest first
	closed  bool
}

type budgetWaiter struct {
	n     int64
	ready chan error // gets nil when granted, ErrClosed on close
}

func newBudget(size int64) *budget { return &budget{size: size} }

// TryAcquire takes n bytes if they are free now and nobody waits before.
func (b *budget) TryAcquire(n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case len(b.waiters) > 0 || b.used+n > b.size:
		return ErrBufferFull
	}
	b.used += n
	return nil
}

// Acquire takes n bytes (n <= size), waiting until they are free, ctx is
// done or the budget is closed.
func (b *budget) Acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if len(b.waiters) == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan error, 1)}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case err := <-w.ready:
		return err
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case err := <-w.ready:
			if err == nil {
				// Granted while giving up: hand the bytes back.
				b.used -= n
				b.grantLocked()
			}
		default:
			for i, o := range b.waiters {
				if o == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
			// The head may have changed: a smaller request behind it may
			// fit now.
			b.grantLocked()
		}
		return ctx.Err()
	}
}

// Release returns n bytes.
func (b *budget) Release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grantLocked()
}

// Used returns the bytes taken.
func (b *budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// close fails the waiters and every later Acquire with ErrClosed.
// Release still works, for the bytes out.
func (b *budget) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, w := range b.waiters {
		w.ready <- ErrClosed
	}
	b.waiters = nil
}

// grantLocked wakes waiters in order while their bytes are free.
func (b *budget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.size {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		w.ready <- nil
	}
}
