package broker

import (
	"testing"

	"github.com/hashicorp/raft"
)

func TestSuccessorOfALostLeader(t *testing.T) {
	voter := func(addr string) raft.Server {
		return raft.Server{Suffrage: raft.Voter, Address: raft.ServerAddress(addr)}
	}
	nonvoter := raft.Server{Suffrage: raft.Nonvoter, Address: "n:1"}
	for _, tc := range []struct {
		name    string
		servers []raft.Server
		lost    raft.ServerAddress
		want    raft.ServerAddress
	}{
		{"the preferred replica lost", []raft.Server{voter("a:1"), voter("b:1"), voter("c:1")}, "a:1", "b:1"},
		{"another replica lost", []raft.Server{voter("a:1"), voter("b:1"), voter("c:1")}, "b:1", "a:1"},
		{"non-voters never stand", []raft.Server{voter("a:1"), nonvoter, voter("c:1")}, "a:1", "c:1"},
		{"no other voter", []raft.Server{voter("a:1"), nonvoter}, "a:1", ""},
	} {
		if got := successor(tc.servers, tc.lost); got != tc.want {
			t.Errorf("%s: successor %q, want %q", tc.name, got, tc.want)
		}
	}
}
