package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorCodes(t *testing.T) {
	// The codes are part of the wire format, and which are retriable is part
	// of the contract with clients: pin both.
	for _, tc := range []struct {
		code      ErrorCode
		value     int16
		name      string
		retriable bool
		sentinel  *Error
	}{
		{CodeNone, 0, "None", false, nil},
		{CodeOffsetOutOfRange, 1, "OffsetOutOfRange", false, ErrOffsetOutOfRange},
		{CodeCorruptMessage, 2, "CorruptMessage", true, ErrCorruptMessage},
		{CodeUnknownTopicOrPartition, 3, "UnknownTopicOrPartition", true, ErrUnknownTopicOrPartition},
		{CodeInvalidRequest, 4, "InvalidRequest", false, ErrInvalidRequest},
		{CodeRequestTooLarge, 5, "RequestTooLarge", false, ErrRequestTooLarge},
		{CodeNotLeader, 6, "NotLeader", true, ErrNotLeader},
		{CodeRequestTimedOut, 7, "RequestTimedOut", true, ErrRequestTimedOut},
		{CodeBackpressure, 8, "Backpressure", true, ErrBackpressure},
		{CodeTopicAlreadyExists, 9, "TopicAlreadyExists", false, ErrTopicAlreadyExists},
		{CodeInvalidTopic, 10, "InvalidTopic", false, ErrInvalidTopic},
		{CodeInvalidConfig, 11, "InvalidConfig", false, ErrInvalidConfig},
		{CodeOutOfOrderSequence, 12, "OutOfOrderSequence", false, ErrOutOfOrderSequence},
		{CodeProducerFenced, 13, "ProducerFenced", false, ErrProducerFenced},
		{CodeUnsupportedVersion, 14, "UnsupportedVersion", false, ErrUnsupportedVersion},
		{CodeUnknownServerError, 15, "UnknownServerError", false, ErrUnknownServerError},
		{CodeLeaderNotAvailable, 16, "LeaderNotAvailable", true, ErrLeaderNotAvailable},
		{CodeInvalidPartitions, 17, "InvalidPartitions", false, ErrInvalidPartitions},
		{CodeInvalidReplicationFactor, 18, "InvalidReplicationFactor", false, ErrInvalidReplicationFactor},
		{CodeNotController, 19, "NotController", true, ErrNotController},
		{CodeMessageTooLarge, 20, "MessageTooLarge", false, ErrMessageTooLarge},
		{CodeBrokerShuttingDown, 21, "BrokerShuttingDown", true, ErrBrokerShuttingDown},
		{CodeInvalidGroupID, 30, "InvalidGroupID", false, ErrInvalidGroupID},
		{CodeGroupIDNotFound, 31, "GroupIDNotFound", false, ErrGroupIDNotFound},
		{CodeUnknownMemberID, 32, "UnknownMemberID", false, ErrUnknownMemberID},
		{CodeFencedMemberEpoch, 33, "FencedMemberEpoch", false, ErrFencedMemberEpoch},
		{CodeNonEmptyGroup, 34, "NonEmptyGroup", false, ErrNonEmptyGroup},
		{CodeUnsupportedAssignor, 35, "UnsupportedAssignor", false, ErrUnsupportedAssignor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if int16(tc.code) != tc.value || tc.code.String() != tc.name || tc.code.Retriable() != tc.retriable ||
				!tc.code.Known() || tc.code.Description() == "" {
				t.Fatalf("code %d %v retriable %v known %v", int16(tc.code), tc.code, tc.code.Retriable(), tc.code.Known())
			}
			err := ErrorForCode(tc.code, "details")
			if tc.code == CodeNone {
				if err != nil {
					t.Fatalf("ErrorForCode(None) = %v", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tc.code || pe.Message != "details" || pe.Retriable() != tc.retriable {
				t.Fatalf("ErrorForCode = %#v", err)
			}
			if !errors.Is(err, tc.sentinel) || !errors.Is(fmt.Errorf("wrapped: %w", err), tc.sentinel) {
				t.Fatal("errors.Is must match the sentinel, also wrapped")
			}
			if tc.sentinel.Code != tc.code || CodeOf(err) != tc.code {
				t.Fatalf("sentinel %v, CodeOf %v", tc.sentinel.Code, CodeOf(err))
			}
			if !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), "details") {
				t.Fatalf("message %q", err)
			}
			if !strings.Contains(tc.sentinel.Error(), tc.code.Description()) {
				t.Fatalf("a sentinel's message %q must describe the code", tc.sentinel.Error())
			}
		})
	}
	if len(codeTable) != 28 {
		t.Fatalf("the table has %d codes, the test 28", len(codeTable))
	}
}

func TestErrorMatching(t *testing.T) {
	if errors.Is(ErrorForCode(CodeNotLeader, "x"), ErrBackpressure) {
		t.Fatal("different codes must not match")
	}
	if errors.Is(ErrorForCode(CodeNotLeader, "x"), errors.New("x")) {
		t.Fatal("an *Error must match only *Error targets")
	}
	unknown := ErrorForCode(99, "")
	if pe := unknown.(*Error); pe.Retriable() || pe.Code.Known() || pe.Code.String() != "ErrorCode(99)" {
		t.Fatalf("unknown code: %v", unknown)
	}
	if got := unknown.Error(); got != "weir/protocol: ErrorCode(99) (99)" {
		t.Fatalf("unknown code message %q", got)
	}
	if ErrorForCodeMessage(CodeNone, str("x")) != nil {
		t.Fatal("None with a message must be nil")
	}
	if err := ErrorForCodeMessage(CodeNotLeader, str("m")); err.(*Error).Message != "m" {
		t.Fatal(err)
	}
	if err := ErrorForCodeMessage(CodeNotLeader, nil); err.(*Error).Message != "" {
		t.Fatal(err)
	}
}

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want ErrorCode
	}{
		{nil, CodeNone},
		{fmt.Errorf("x: %w", ErrNotLeader), CodeNotLeader},
		{&FrameTooLargeError{Size: 10, Max: 5}, CodeRequestTooLarge},
		{truncatedf("x"), CodeInvalidRequest},
		{errors.New("disk on fire"), CodeUnknownServerError},
	} {
		if got := CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestNullableString(t *testing.T) {
	if NullableString("") != nil || *NullableString("a") != "a" {
		t.Fatal("NullableString")
	}
}
