// Package raftfuture waits for hashicorp/raft futures that may never be
// answered.
//
// hashicorp/raft (v1.7.3) answers an Apply or Barrier future once its
// entry is applied, or fails it when leadership is lost. But a future
// still on its way when the node shuts down (in the apply channel, which
// BatchApplyCh buffers, or queued for the FSM) is never answered, and its
// Error blocks forever: Raft gives some of its futures a shutdown channel
// that ends the wait, but not these. A partition leader shutting down in
// the middle of its first barrier kept a broker with 1,000 partitions
// from exiting for minutes after SIGTERM.
package raftfuture

import (
	"reflect"

	"github.com/hashicorp/raft"
)

// Error waits for f's answer, or until stop is closed, and then returns
// raft.ErrRaftShutdown. Close stop when the node is being shut down. Once
// stop is closed, Error may return ErrRaftShutdown even for a future that
// was answered (both cases of Raft's select are ready): callers treat it
// as "not leader", and a producer's retry is deduplicated like any other.
func Error(f raft.Future, stop chan struct{}) error {
	setShutdownCh(f, stop)
	return f.Error()
}

// setShutdownCh gives f's wait the shutdown channel stop, through the
// exported ShutdownCh field of Raft's futures, unless f has one already.
// It reports whether f now has one; futures without the field (Raft's
// errorFuture, answered already) are left alone.
func setShutdownCh(f raft.Future, stop chan struct{}) bool {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	field := v.Elem().FieldByName("ShutdownCh")
	if !field.IsValid() || !field.CanSet() || field.Type() != reflect.TypeOf(stop) {
		return false
	}
	// NB: no race with Raft: only Error reads the field, and Raft's
	// goroutines answer through other fields.
	if field.IsNil() {
		field.Set(reflect.ValueOf(stop))
	}
	return true
}
