package client_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"weir/broker"
	"weir/client"
)

// exampleBroker runs a single-node broker on 127.0.0.1 for the examples, as
// `weir serve` would, and returns its address and how to stop it.
func exampleBroker() (string, func()) {
	dir, _ := os.MkdirTemp("", "weir-example")
	b, err := broker.Open(broker.Config{DataDir: dir, RaftHeartbeatTimeout: 50 * time.Millisecond,
		RaftElectionTimeout: 50 * time.Millisecond, RaftLeaderLeaseTimeout: 50 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(ln) }()
	return ln.Addr().String(), func() {
		b.Close()
		<-served
		os.RemoveAll(dir)
	}
}

func ExampleAdmin() {
	addr, stop := exampleBroker()
	defer stop()
	ctx := context.Background()

	admin, err := client.NewAdmin(client.SeedBrokers(addr))
	if err != nil {
		panic(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(ctx, "orders", 3, 1, map[string]string{"retention.ms": "86400000"}); err != nil {
		panic(err)
	}
	d, err := admin.DescribeTopic(ctx, "orders")
	if err != nil {
		panic(err)
	}
	retention, _ := d.Config("retention.ms")
	fmt.Println(d.Name, len(d.Partitions), "partitions, retention.ms", retention)
	// Output: orders 3 partitions, retention.ms 86400000
}

func ExampleProducer() {
	addr, stop := exampleBroker()
	defer stop()
	ctx := context.Background()
	admin, _ := client.NewAdmin(client.SeedBrokers(addr))
	defer admin.Close()
	if err := admin.CreateTopic(ctx, "events", 1, 1, nil); err != nil {
		panic(err)
	}

	p, err := client.NewProducer(client.SeedBrokers(addr), client.Linger(time.Millisecond))
	if err != nil {
		panic(err)
	}
	defer p.Close()
	// Asynchronous: the promise runs once the broker has the record.
	done := make(chan struct{})
	p.Produce(ctx, &client.Record{Topic: "events", Value: []byte("first")}, func(r *client.Record, err error) {
		fmt.Println("async:", string(r.Value), "at offset", r.Offset, err)
		close(done)
	})
	<-done
	// Synchronous: returns when every record is acknowledged.
	second := &client.Record{Topic: "events", Value: []byte("second")}
	if err := p.ProduceSync(ctx, second); err != nil {
		panic(err)
	}
	fmt.Println("sync:", string(second.Value), "at offset", second.Offset)
	// Output:
	// async: first at offset 0 <nil>
	// sync: second at offset 1
}

func ExampleConsumer() {
	addr, stop := exampleBroker()
	defer stop()
	ctx := context.Background()
	admin, _ := client.NewAdmin(client.SeedBrokers(addr))
	defer admin.Close()
	if err := admin.CreateTopic(ctx, "log", 1, 1, nil); err != nil {
		panic(err)
	}
	p, _ := client.NewProducer(client.SeedBrokers(addr))
	for _, v := range []string{"a", "b", "c"} {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "log", Value: []byte(v)}); err != nil {
			panic(err)
		}
	}
	p.Close()

	c, err := client.NewConsumer(client.SeedBrokers(addr))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.Assign("log", 0)
	c.SeekTo("log", 0, 1) // replay from offset 1
	recs, err := c.Poll(ctx)
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		fmt.Println(r.Offset, string(r.Value))
	}
	// Output:
	// 1 b
	// 2 c
}

func ExampleGroupConsumer() {
	addr, stop := exampleBroker()
	defer stop()
	ctx := context.Background()
	admin, _ := client.NewAdmin(client.SeedBrokers(addr))
	defer admin.Close()
	if err := admin.CreateTopic(ctx, "payments", 1, 1, nil); err != nil {
		panic(err)
	}
	p, _ := client.NewProducer(client.SeedBrokers(addr))
	for _, v := range []string{"a", "b", "c"} {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "payments", Value: []byte(v)}); err != nil {
			panic(err)
		}
	}
	p.Close()

	// Members of the group "ledger" share the partitions of "payments".
	// Without committed offsets, a partition starts at its oldest record.
	g, err := client.NewGroupConsumer("ledger", client.SeedBrokers(addr),
		client.Subscribe("payments"), client.ResetOffset(client.Earliest),
		client.OnAssigned(func(_ context.Context, tps []client.TopicPartition) {
			fmt.Println("assigned", tps)
		}))
	if err != nil {
		panic(err)
	}
	for n := 0; n < 3; {
		recs, err := g.Poll(ctx) // finishes the records of the previous Poll
		if err != nil {
			panic(err)
		}
		for _, r := range recs {
			fmt.Println(r.Offset, string(r.Value))
		}
		n += len(recs)
	}
	// Close commits what Poll returned and leaves the group; the next
	// member of "ledger" goes on from offset 3.
	if err := g.Close(); err != nil {
		panic(err)
	}
	offsets, _ := admin.GroupOffsets(ctx, "ledger")
	fmt.Println("committed", offsets[client.TopicPartition{Topic: "payments", Partition: 0}])
	// Output:
	// assigned [payments[0]]
	// 0 a
	// 1 b
	// 2 c
	// committed 3
}
