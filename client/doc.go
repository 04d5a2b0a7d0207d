// Package client is weir's Go client: a Producer that batches, compresses
// and retries records, a Consumer that prefetches them, and an Admin for
// topics and offsets. It speaks the wire protocol of package protocol (see
// PROTOCOL.md) and imports no other package of weir.
//
// # Producing
//
//	p, err := client.NewProducer(client.SeedBrokers("127.0.0.1:7420"))
//	...
//	defer p.Close() // flushes first
//	p.Produce(ctx, &client.Record{Topic: "orders", Key: k, Value: v},
//		func(r *client.Record, err error) {
//			// r.Partition and r.Offset are set when err is nil
//		})
//	err = p.ProduceSync(ctx, &client.Record{Topic: "orders", Value: v})
//
// Records are gathered into one batch per partition until the batch reaches
// BatchBytes or has waited Linger, then sent to the partition's leader. The
// producer is idempotent by default: it asks the cluster for a producer id
// once and numbers the records of each partition, so that a batch sent again
// after a timeout or a dropped connection is written once. Retriable errors
// (Backpressure, NotLeader, LeaderNotAvailable, lost connections, ...) are
// retried with exponential backoff (capped at 250ms while a partition's
// leader moves) until DeliveryTimeout; a request that waits long on a node
// that no longer leads its partition is abandoned for the new leader.
// MaxBufferedBytes bounds the memory records wait in.
//
// # Consuming
//
//	c, err := client.NewConsumer(client.SeedBrokers("127.0.0.1:7420"))
//	...
//	defer c.Close()
//	c.Assign("orders", 0, 1, 2)
//	for {
//		records, err := c.Poll(ctx)
//		...
//	}
//
// A background loop per broker long-polls the leaders of the assigned
// partitions and keeps up to MaxPrefetchBytes of decoded records ready for
// Poll. It sends the next fetch before it decodes a response, so that the
// broker sends while the client decodes.
//
// # Consumer groups
//
//	g, err := client.NewGroupConsumer("billing", client.SeedBrokers("127.0.0.1:7420"),
//		client.Subscribe("orders"), client.ResetOffset(client.Earliest))
//	...
//	defer g.Close() // commits what Poll returned, leaves the group
//	for {
//		records, err := g.Poll(ctx) // the records of the last Poll are finished now
//		...
//	}
//
// The group's coordinator (the metadata controller) assigns partitions;
// a heartbeat loop follows the assignment, starts new partitions at the
// group's committed offsets, and gives revoked ones back at the next Poll
// after committing them. Auto-commit (AutoCommitInterval) commits only
// records the caller has finished. See GroupConsumer.
//
// # Concurrency
//
// Producer, Consumer and Admin are safe for concurrent use. Each owns its
// connections (one per broker, plus one per broker for a Consumer's long
// polls, so that a fetch held by the broker does not delay other requests);
// Close ends every goroutine they started.
//
// # Goroutines and locks
//
//	conn        a writer and a reader per connection; Close waits for both
//	Producer    one loop per partition produced to (partProducer.run)
//	Consumer    a metadata loop, and a fetch loop per broker (fetchLoop.run)
//	GroupConsumer  its Consumer's, a heartbeat loop, an auto-commit loop, one per CommitAsync
//
// Lock order, outermost first: Producer.intake (shared, by Produce), then
// Producer.mu, then partProducer.mu; GroupConsumer.mu, then Consumer.mu,
// then cluster.mu;
// cluster.refreshMu (held across a metadata request), then cluster.mu.
// budget, conn.mu, Producer.pending and the partitioners' locks are
// leaves. No lock but cluster.refreshMu and Producer.pid (one
// InitProducerID at a time) is held across I/O.
//
// # Files
//
//	conn.go         one broker connection: pipelined requests, writer and reader goroutines
//	cluster.go      seed brokers, the metadata cache, one connection per broker
//	admin.go        topics, configs, offsets
//	producer.go     Producer: Produce, ProduceSync, Flush, Close
//	partproducer.go one partition's batching, sequencing, sending and retrying loop
//	batch.go        batches and the idempotence fields of their header
//	partitioner.go  key hash (murmur2), round robin, explicit
//	budget.go       the byte budget behind MaxBufferedBytes
//	consumer.go     Consumer: Assign, Seek*, Poll, Position
//	fetcher.go      the per-broker fetch loops and the metadata loop
//	fetch.go        one fetch: sending it, pipelining the next, storing its records
//	group.go        GroupConsumer: Poll, Commit, revocation and fencing
//	group_heartbeat.go  the heartbeat loop: join, assignment, rejoin
//	group_options.go    the group's options
//	admin_group.go  list, describe, delete groups; read, commit, reset their offsets
//	frames.go       decoding log frames and their records from fetch responses
//	options.go      functional options and their defaults
//	errors.go       sentinel errors
//	record.go       Record
package client
