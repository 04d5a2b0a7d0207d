package broker

import (
	"context"
	"sync"
)

// budget is a pool of bytes: the broker's bound on memory held by requests
// and on produce bytes waiting for Raft. Acquire waits; TryAcquire does not.
type budget struct {
	mu      sync.Mutex
	free    int64
	size    int64
	waiters []budgetWaiter // first come, first served
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newBudget(size int64) *budget { return &budget{free: size, size: size} }

// TryAcquire takes n bytes if they are free now. A request larger than the
// whole budget is granted when the budget is entirely free, so it can never
// wait forever.
func (b *budget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, b.size)
	if len(b.waiters) > 0 || b.free < n {
		return false
	}
	b.free -= n
	return true
}

// Acquire takes n bytes, waiting until they are free or ctx is done.
func (b *budget) Acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	n = min(n, b.size)
	if len(b.waiters) == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return nil
	}
	w := budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready:
			// Granted while giving up: hand the bytes back.
			b.releaseLocked(n)
		default:
			for i := range b.waiters {
				if b.waiters[i].ready == w.ready {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
			b.grantLocked()
		}
		return ctx.Err()
	}
}

// Release returns n bytes taken by Acquire or TryAcquire.
func (b *budget) Release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(min(n, b.size))
}

func (b *budget) releaseLocked(n int64) {
	b.free += n
	b.grantLocked()
}

// grantLocked wakes waiters in order while their bytes are free.
func (b *budget) grantLocked() {
	for len(b.waiters) > 0 && b.free >= b.waiters[0].n {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.free -= w.n
		close(w.ready)
	}
}

// InUse is the number of bytes taken.
func (b *budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size - b.free
}
