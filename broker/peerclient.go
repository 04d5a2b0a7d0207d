package broker

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"weir/protocol"
)

// brokerPool holds a brokerClient per broker address, for the requests
// brokers send each other (JoinCluster, ReportLeaders, NodeInfo,
// ReplicaStatus, CompleteReassignment).
type brokerPool struct {
	mu sync.Mutex
	m  map[string]*brokerClient
}

// call sends req to the broker at addr and returns its response. Calls to
// one address take turns; calls to different ones do not wait for each
// other.
func (p *brokerPool) call(ctx context.Context, addr string, req protocol.Request) (protocol.Response, error) {
	p.mu.Lock()
	if p.m == nil {
		p.m = map[string]*brokerClient{}
	}
	c := p.m[addr]
	if c == nil {
		c = &brokerClient{}
		p.m[addr] = c
	}
	p.mu.Unlock()
	return c.call(ctx, addr, req)
}

// Close drops every connection.
func (p *brokerPool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.m {
		c.Close()
	}
}

// brokerClient sends requests to another broker's client port, one at a
// time over one connection, redialed when the target changes or the
// connection fails.
type brokerClient struct {
	clientID string
	mu       sync.Mutex
	addr     string
	conn     net.Conn
	corr     int32
}

// maxBrokerResponse bounds a broker-to-broker response.
const maxBrokerResponse = 1 << 20

// call sends req to addr and returns its response.
func (c *brokerClient) call(ctx context.Context, addr string, req protocol.Request) (protocol.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.addr != addr {
		c.closeLocked()
	}
	if c.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		c.conn, c.addr = conn, addr
	}
	resp, err := c.roundTrip(ctx, req)
	if err != nil {
		c.closeLocked()
		return nil, fmt.Errorf("%v to %s: %w", req.Key(), addr, err)
	}
	return resp, nil
}

func (c *brokerClient) roundTrip(ctx context.Context, req protocol.Request) (protocol.Response, error) {
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	c.conn.SetDeadline(deadline)
	c.corr++
	frame, err := protocol.AppendRequestFrame(nil, c.corr, c.clientID, req)
	if err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(frame); err != nil {
		return nil, err
	}
	frame, err = protocol.ReadFrame(c.conn, maxBrokerResponse, nil)
	if err != nil {
		return nil, err
	}
	hdr, body, err := protocol.DecodeResponseHeader(frame)
	if err != nil {
		return nil, err
	}
	if hdr.CorrelationID != c.corr {
		return nil, fmt.Errorf("response to correlation id %d, want %d", hdr.CorrelationID, c.corr)
	}
	resp := req.ResponseKind()
	if err := resp.Decode(protocol.NewReader(body)); err != nil {
		return nil, err
	}
	return resp, nil
}

func (c *brokerClient) closeLocked() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// Close drops the connection.
func (c *brokerClient) Close() {
	c.mu.Lock()
	c.closeLocked()
	c.mu.Unlock()
}
