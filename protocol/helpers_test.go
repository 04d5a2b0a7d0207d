package protocol

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// sample is a named message for table tests.
type sample struct {
	name string
	msg  Message
}

// str returns a pointer to s, for nullable strings.
func str(s string) *string { return &s }

// fill returns n bytes of a recognisable pattern.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// sampleMessages returns every request and response with non-trivial values,
// several times where null and empty differ. Empty non-nullable arrays are
// nil: that is how they decode.
func sampleMessages() []sample {
	return []sample{
		{"APIVersionsRequest", &APIVersionsRequest{}},
		{"APIVersionsResponse", &APIVersionsResponse{ErrorCode: CodeNone, APIs: SupportedAPIs()}},
		{"APIVersionsResponse/unsupported", &APIVersionsResponse{ErrorCode: CodeUnsupportedVersion}},

		{"MetadataRequest/all", &MetadataRequest{Topics: nil}},
		{"MetadataRequest/none", &MetadataRequest{Topics: []string{}}},
		{"MetadataRequest/some", &MetadataRequest{Topics: []string{"orders", "", "payments.eu-1"}}},
		{"MetadataResponse", &MetadataResponse{
			Brokers: []MetadataResponseBroker{
				{NodeID: 1, Host: "127.0.0.1", Port: 7420},
				{NodeID: 2, Host: "broker-2.example.com", Port: 17420},
			},
			ControllerID: 2,
			Topics: []MetadataResponseTopic{
				{Name: "orders", Partitions: []MetadataResponsePartition{
					{Partition: 0, LeaderID: 1, LeaderEpoch: 7, Replicas: []int32{1, 2, 3}, HighWatermark: 1 << 40, LogStartOffset: 12},
					{ErrorCode: CodeLeaderNotAvailable, Partition: 1, LeaderID: -1, LeaderEpoch: -1, HighWatermark: -1, LogStartOffset: -1},
				}},
				{ErrorCode: CodeUnknownTopicOrPartition, Name: "nope"},
			},
		}},

		{"CreateTopicsRequest", &CreateTopicsRequest{
			Topics: []CreateTopicsRequestTopic{
				{Name: "orders", Partitions: 6, ReplicationFactor: 3, Configs: []CreateTopicsRequestConfig{
					{Key: "retention.ms", Value: "604800000"}, {Key: "max.bytes", Value: ""},
				}},
				{Name: "bare", Partitions: 1, ReplicationFactor: 1},
			},
			TimeoutMs: 30000,
		}},
		{"CreateTopicsResponse", &CreateTopicsResponse{Topics: []CreateTopicsResponseTopic{
			{Name: "orders"},
			{Name: "bare", ErrorCode: CodeTopicAlreadyExists, ErrorMessage: str("topic bare exists")},
			{Name: "empty-message", ErrorCode: CodeInvalidConfig, ErrorMessage: str("")},
		}}},

		{"DeleteTopicsRequest", &DeleteTopicsRequest{Names: []string{"a", "b"}, TimeoutMs: -1}},
		{"DeleteTopicsResponse", &DeleteTopicsResponse{Topics: []DeleteTopicsResponseTopic{
			{Name: "a"}, {Name: "b", ErrorCode: CodeNotController, ErrorMessage: str("ask node 3")},
		}}},

		{"DescribeConfigsRequest", &DescribeConfigsRequest{Topics: []string{"orders"}}},
		{"DescribeConfigsResponse", &DescribeConfigsResponse{Topics: []DescribeConfigsResponseTopic{
			{Name: "orders", Configs: []DescribeConfigsResponseConfig{
				{Key: "retention.ms", Value: "604800000", IsDefault: true},
				{Key: "discard", Value: "reject", IsDefault: false},
			}},
			{Name: "gone", ErrorCode: CodeUnknownTopicOrPartition, ErrorMessage: str("no topic gone")},
		}}},

		{"AlterConfigsRequest", &AlterConfigsRequest{Topics: []AlterConfigsRequestTopic{
			{Name: "orders", Configs: []AlterConfigsRequestConfig{
				{Key: "retention.ms", Value: str("1000")},
				{Key: "max.bytes", Value: nil},
				{Key: "discard", Value: str("")},
			}},
		}}},
		{"AlterConfigsResponse", &AlterConfigsResponse{Topics: []AlterConfigsResponseTopic{
			{Name: "orders", ErrorCode: CodeInvalidConfig, ErrorMessage: str("bad value")},
		}}},

		{"ProduceRequest", &ProduceRequest{Acks: -1, TimeoutMs: 5000, Topics: []ProduceRequestTopic{
			{Name: "orders", Partitions: []ProduceRequestPartition{
				{Partition: 0, Records: fill(300, 1)},
				{Partition: 3, Records: []byte{}},
				{Partition: 4, Records: nil},
			}},
			{Name: "audit", Partitions: []ProduceRequestPartition{{Partition: 1, Records: fill(5, 9)}}},
		}}},
		{"ProduceRequest/acks0", &ProduceRequest{Acks: 0, TimeoutMs: 0}},
		{"ProduceResponse", &ProduceResponse{Topics: []ProduceResponseTopic{
			{Name: "orders", Partitions: []ProduceResponsePartition{
				{Partition: 0, BaseOffset: 1000, LogStartOffset: 10, LeaderID: 1},
				{Partition: 3, ErrorCode: CodeNotLeader, ErrorMessage: str("leader is node 2"), BaseOffset: -1, LogStartOffset: -1,
					LeaderID: 2, LeaderAddress: "10.0.0.2:7420"},
				{Partition: 4, ErrorCode: CodeBackpressure, BaseOffset: -1, LogStartOffset: -1, RetryAfterMs: 250, LeaderID: 1},
			}},
		}}},

		{"FetchRequest", &FetchRequest{MaxWaitMs: 500, MinBytes: 1, MaxBytes: 50 << 20, Topics: []FetchRequestTopic{
			{Name: "orders", Partitions: []FetchRequestPartition{
				{Partition: 0, FetchOffset: 0, PartitionMaxBytes: 1 << 20},
				{Partition: 5, FetchOffset: 1<<62 + 3, PartitionMaxBytes: 1},
			}},
		}}},
		{"FetchResponse", &FetchResponse{Topics: []FetchResponseTopic{
			{Name: "orders", Partitions: []FetchResponsePartition{
				{Partition: 0, HighWatermark: 77, LogStartOffset: 3, LeaderID: 1, Records: fill(1000, 3)},
				{Partition: 5, ErrorCode: CodeOffsetOutOfRange, ErrorMessage: str("offset 9 not in [3, 7]"),
					HighWatermark: 7, LogStartOffset: 3, LeaderID: 1, Records: nil},
				{Partition: 6, HighWatermark: 7, LogStartOffset: 7, LeaderID: 1, Records: []byte{}},
			}},
			{Name: "audit", Partitions: []FetchResponsePartition{
				{Partition: 2, ErrorCode: CodeNotLeader, LeaderID: 3, LeaderAddress: "[::1]:7420"},
			}},
		}}},

		{"ListOffsetsRequest", &ListOffsetsRequest{Topics: []ListOffsetsRequestTopic{
			{Name: "orders", Partitions: []ListOffsetsRequestPartition{
				{Partition: 0, Timestamp: -2}, {Partition: 1, Timestamp: -1}, {Partition: 2, Timestamp: 1732579200000},
			}},
		}}},
		{"ListOffsetsResponse", &ListOffsetsResponse{Topics: []ListOffsetsResponseTopic{
			{Name: "orders", Partitions: []ListOffsetsResponsePartition{
				{Partition: 0, Offset: 3, Timestamp: -1, LeaderID: 1},
				{Partition: 2, Offset: 42, Timestamp: 1732579200123, LeaderID: 1},
				{Partition: 9, ErrorCode: CodeUnknownTopicOrPartition, ErrorMessage: str("no partition 9"), Offset: -1, Timestamp: -1, LeaderID: -1},
			}},
		}}},

		{"InitProducerIDRequest", &InitProducerIDRequest{}},
		{"InitProducerIDResponse", &InitProducerIDResponse{ProducerID: 1<<40 + 17, ProducerEpoch: 3}},
		{"InitProducerIDResponse/error", &InitProducerIDResponse{ErrorCode: CodeNotController, ErrorMessage: str("try node 1"),
			ProducerID: -1, ProducerEpoch: -1}},

		{"FetchRequest/v1", &FetchRequest{Version: 1, MaxWaitMs: 500, MinBytes: 1, MaxBytes: 1 << 20, Topics: []FetchRequestTopic{
			{Name: "orders", Partitions: []FetchRequestPartition{{Partition: 2, FetchOffset: 40, PartitionMaxBytes: 1 << 20}}},
		}, GroupID: str("billing"), MemberID: "m-1", MemberEpoch: 7}},
		{"FetchRequest/v1-no-group", &FetchRequest{Version: 1, MaxWaitMs: 500, MaxBytes: 1 << 20, MemberEpoch: -1}},
		{"FetchResponse/v1", &FetchResponse{Version: 1, Topics: []FetchResponseTopic{
			{Name: "orders", Partitions: []FetchResponsePartition{
				{Partition: 2, ErrorCode: CodeFencedMemberEpoch, HighWatermark: -1, LogStartOffset: -1, LeaderID: 1},
			}},
		}}},

		{"ConsumerGroupHeartbeatRequest/join", &ConsumerGroupHeartbeatRequest{GroupID: "billing", InstanceID: str("host-1"),
			SessionTimeoutMs: 10000, SubscribedTopicNames: []string{"orders", "payments"}, SubscribedTopicRegex: str("^audit-.*"),
			ServerAssignor: str("uniform")}},
		{"ConsumerGroupHeartbeatRequest/beat", &ConsumerGroupHeartbeatRequest{GroupID: "billing", MemberID: "m-1", MemberEpoch: 3,
			Owned: []ConsumerGroupHeartbeatRequestTopic{{Topic: "orders", Partitions: []int32{0, 2, 4}}}}},
		{"ConsumerGroupHeartbeatResponse", &ConsumerGroupHeartbeatResponse{MemberID: "m-1", MemberEpoch: 4, HeartbeatIntervalMs: 500,
			Assignment: []ConsumerGroupHeartbeatResponseTopic{{Topic: "orders", Partitions: []int32{0, 4}}}}},
		{"ConsumerGroupHeartbeatResponse/error", &ConsumerGroupHeartbeatResponse{ErrorCode: CodeUnknownMemberID,
			ErrorMessage: str("session expired"), MemberID: "m-1", MemberEpoch: -1}},

		{"OffsetCommitRequest", &OffsetCommitRequest{GroupID: "billing", MemberID: "m-1", MemberEpoch: 4, Topics: []OffsetCommitRequestTopic{
			{Name: "orders", Partitions: []OffsetCommitRequestPartition{
				{Partition: 0, CommittedOffset: 1200}, {Partition: 4, CommittedOffset: 0, CommittedMetadata: str("batch 17")},
			}},
		}}},
		{"OffsetCommitResponse", &OffsetCommitResponse{Topics: []OffsetCommitResponseTopic{
			{Name: "orders", Partitions: []OffsetCommitResponsePartition{{Partition: 0}, {Partition: 4, ErrorCode: CodeFencedMemberEpoch}}},
		}}},

		{"OffsetFetchRequest/all", &OffsetFetchRequest{GroupID: "billing"}},
		{"OffsetFetchRequest/some", &OffsetFetchRequest{GroupID: "billing", Topics: []OffsetFetchRequestTopic{
			{Name: "orders", Partitions: []int32{0, 1}},
		}}},
		{"OffsetFetchResponse", &OffsetFetchResponse{Topics: []OffsetFetchResponseTopic{
			{Name: "orders", Partitions: []OffsetFetchResponsePartition{
				{Partition: 0, CommittedOffset: 1200, CommittedMetadata: str("")}, {Partition: 1, CommittedOffset: -1},
			}},
		}}},

		{"ListGroupsRequest", &ListGroupsRequest{}},
		{"ListGroupsResponse", &ListGroupsResponse{Groups: []ListGroupsResponseGroup{
			{GroupID: "audit", State: "Empty"}, {GroupID: "billing", State: "Stable", Members: 3},
		}}},

		{"DescribeGroupsRequest", &DescribeGroupsRequest{GroupIDs: []string{"billing", "nope"}}},
		{"DescribeGroupsResponse", &DescribeGroupsResponse{Groups: []DescribeGroupsResponseGroup{
			{GroupID: "billing", State: "Reconciling", GroupEpoch: 9, Assignor: "uniform", Members: []DescribeGroupsResponseMember{
				{MemberID: "m-1", InstanceID: str("host-1"), ClientID: "weir-cli", ClientHost: "127.0.0.1:50122", MemberEpoch: 4,
					SubscribedTopicNames: []string{"orders"}, Assignment: []DescribeGroupsResponseTopic{{Topic: "orders", Partitions: []int32{0, 4}}}},
			}, Offsets: []DescribeGroupsResponseOffsetTopic{{Topic: "orders", Partitions: []DescribeGroupsResponseOffset{
				{Partition: 0, CommittedOffset: 1200, HighWatermark: 1500, Lag: 300, MemberID: "m-1"},
				{Partition: 1, CommittedOffset: -1, HighWatermark: -1, Lag: -1},
			}}}},
			{ErrorCode: CodeGroupIDNotFound, GroupID: "nope"},
		}}},

		{"JoinClusterRequest", &JoinClusterRequest{NodeID: 2, ClientAddress: "10.0.0.2:7420", PeerAddress: "10.0.0.2:7421"}},
		{"JoinClusterRequest/v1", &JoinClusterRequest{Version: 1, NodeID: 2, ClientAddress: "10.0.0.2:7420", PeerAddress: "10.0.0.2:7421"}},
		{"JoinClusterResponse", &JoinClusterResponse{ControllerID: 1}},
		{"JoinClusterResponse/v1", &JoinClusterResponse{Version: 1, ControllerID: 1, MetadataIndex: 1234}},
		{"JoinClusterResponse/not-controller", &JoinClusterResponse{ErrorCode: CodeNotController, ControllerID: 3,
			ControllerAddress: "10.0.0.3:7420"}},
		{"ReportLeadersRequest", &ReportLeadersRequest{Leaders: []ReportLeadersRequestLeader{
			{Topic: "orders", TopicID: 4, Partition: 2, LeaderID: 2, LeaderEpoch: 17},
		}}},
		{"ReportLeadersResponse", &ReportLeadersResponse{ErrorCode: CodeNotController, ErrorMessage: str("ask node 1"),
			ControllerID: 1, ControllerAddress: "10.0.0.1:7420"}},
		{"NodeInfoRequest", &NodeInfoRequest{}},
		{"NodeInfoResponse", &NodeInfoResponse{NodeID: 3, ClientAddress: "10.0.0.3:7420", PeerAddress: "10.0.0.3:7421", InCluster: true}},
		{"ReassignPartitionsRequest", &ReassignPartitionsRequest{Topic: "orders", Partitions: []ReassignPartitionsRequestPartition{
			{Partition: 0, Replicas: []int32{4, 2, 3}}, {Partition: 5, Replicas: []int32{1}},
		}}},
		{"ReassignPartitionsResponse", &ReassignPartitionsResponse{ErrorCode: CodeInvalidReplicationFactor,
			ErrorMessage: str("node 9 is not in the cluster"), ControllerID: 1}},
		{"ReplicaStatusRequest", &ReplicaStatusRequest{Topic: "orders", TopicID: 4, Partition: 2}},
		{"ReplicaStatusResponse", &ReplicaStatusResponse{LastIndex: 123456}},
		{"CompleteReassignmentRequest", &CompleteReassignmentRequest{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []int32{4, 2, 3}}},
		{"CompleteReassignmentResponse", &CompleteReassignmentResponse{ErrorCode: CodeNotController, ControllerID: 2,
			ControllerAddress: "10.0.0.2:7420"}},
		{"RemoveNodeRequest", &RemoveNodeRequest{NodeID: 3}},
		{"RemoveNodeResponse", &RemoveNodeResponse{ControllerID: 1}},
		{"DemoteReplicaRequest", &DemoteReplicaRequest{Topic: "orders", TopicID: 4, Partition: 1, NodeID: 2}},
		{"DemoteReplicaResponse", &DemoteReplicaResponse{ErrorCode: CodeNotLeader}},

		{"DeleteGroupsRequest", &DeleteGroupsRequest{GroupIDs: []string{"audit", "billing"}}},
		{"DeleteGroupsResponse", &DeleteGroupsResponse{Results: []DeleteGroupsResponseResult{
			{GroupID: "audit"}, {GroupID: "billing", ErrorCode: CodeNonEmptyGroup},
		}}},
	}
}

// newLike returns a new, empty message of m's type at m's version.
func newLike(m Message) Message {
	n := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
	n.SetVersion(m.GetVersion())
	return n
}

// decodeAs decodes b as a message of m's type and version.
func decodeAs(m Message, b []byte) (Message, error) {
	n := newLike(m)
	return n, n.Decode(NewReader(b))
}

// mustEqual fails t if got and want differ, showing both.
func mustEqual(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %s\nwant %s", dump(got), dump(want))
	}
}

// dump prints a value with pointers followed.
func dump(v any) string {
	var b bytes.Buffer
	dumpValue(&b, reflect.ValueOf(v))
	return b.String()
}

func dumpValue(b *bytes.Buffer, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		b.WriteString("&")
		dumpValue(b, v.Elem())
	case reflect.Struct:
		fmt.Fprintf(b, "%s{", v.Type().Name())
		for i := range v.NumField() {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "%s: ", v.Type().Field(i).Name)
			dumpValue(b, v.Field(i))
		}
		b.WriteString("}")
	case reflect.Slice:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			fmt.Fprintf(b, "bytes(%d)", v.Len())
			return
		}
		b.WriteString("[")
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(" ")
			}
			dumpValue(b, v.Index(i))
		}
		b.WriteString("]")
	default:
		fmt.Fprintf(b, "%#v", v.Interface())
	}
}
