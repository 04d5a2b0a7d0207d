package protocol

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors of this package's own operations. Check them with errors.Is; the
// error that carries one says what failed and where.
var (
	// Reading frames and decoding messages.

	// ErrFrameTooLarge is returned by ReadFrame for a frame whose declared
	// size is over the limit, before anything is allocated. The error is a
	// *FrameTooLargeError. The rest of the frame is still in the stream, so
	// the connection cannot be used any further: close it.
	ErrFrameTooLarge = errors.New("weir/protocol: frame too large")

	// ErrMalformed marks bytes that do not decode as the message they should
	// be: a length or count past the end of the data, a negative length, a
	// bool that is not 0 or 1, bytes left over after the message.
	ErrMalformed = errors.New("weir/protocol: malformed message")

	// ErrTruncated marks a message that ends early: a field, or the bytes a
	// length or count declares, goes past the end of the data. It matches
	// ErrMalformed too.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrMalformed)

	// Encoding messages.

	// ErrTooLong is the sticky error of a Writer asked to encode a string over
	// 32767 bytes, or bytes or an array over 2^31-1 bytes or elements: their
	// length does not fit the wire's length field.
	ErrTooLong = errors.New("weir/protocol: value too long to encode")

	// ErrExternalLength is returned by SegmentedFrame.Send when the caller
	// writes a different number of bytes into a gap than the gap's length:
	// the frame on the wire would no longer match its header.
	ErrExternalLength = errors.New("weir/protocol: external bytes do not match their declared length")
)

// FrameTooLargeError is the error of ReadFrame for a frame over the limit.
// It matches ErrFrameTooLarge with errors.Is.
type FrameTooLargeError struct {
	Size uint32 // the size the frame declares
	Max  int    // the limit it exceeds
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("weir/protocol: frame of %d bytes exceeds the limit of %d", e.Size, e.Max)
}

// Is makes errors.Is(err, ErrFrameTooLarge) true.
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }

// malformedf returns an error matching ErrMalformed.
func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// truncatedf returns an error matching ErrTruncated and ErrMalformed.
func truncatedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTruncated, fmt.Sprintf(format, args...))
}

// ErrorCode is the error code in a response: 0 for success, else one of the
// codes below. Codes are part of the wire format; never change one, only add.
// Codes from 30 on are reserved for consumer groups.
type ErrorCode int16

// Error codes, part of the wire format; never change.
const (
	CodeNone                     ErrorCode = 0
	CodeOffsetOutOfRange         ErrorCode = 1
	CodeCorruptMessage           ErrorCode = 2
	CodeUnknownTopicOrPartition  ErrorCode = 3
	CodeInvalidRequest           ErrorCode = 4
	CodeRequestTooLarge          ErrorCode = 5
	CodeNotLeader                ErrorCode = 6
	CodeRequestTimedOut          ErrorCode = 7
	CodeBackpressure             ErrorCode = 8
	CodeTopicAlreadyExists       ErrorCode = 9
	CodeInvalidTopic             ErrorCode = 10
	CodeInvalidConfig            ErrorCode = 11
	CodeOutOfOrderSequence       ErrorCode = 12
	CodeProducerFenced           ErrorCode = 13
	CodeUnsupportedVersion       ErrorCode = 14
	CodeUnknownServerError       ErrorCode = 15
	CodeLeaderNotAvailable       ErrorCode = 16
	CodeInvalidPartitions        ErrorCode = 17
	CodeInvalidReplicationFactor ErrorCode = 18
	CodeNotController            ErrorCode = 19
	CodeMessageTooLarge          ErrorCode = 20
	CodeBrokerShuttingDown       ErrorCode = 21

	// Consumer group codes start at 30.
	CodeInvalidGroupID      ErrorCode = 30
	CodeGroupIDNotFound     ErrorCode = 31
	CodeUnknownMemberID     ErrorCode = 32
	CodeFencedMemberEpoch   ErrorCode = 33
	CodeNonEmptyGroup       ErrorCode = 34
	CodeUnsupportedAssignor ErrorCode = 35
)

// codeInfo is one row of the error code table.
type codeInfo struct {
	name        string
	retriable   bool
	description string
}

// codeTable maps every known code to its name, whether a client may retry the
// same request (after refreshing metadata or waiting, as the description
// says), and what it means. PROTOCOL.md reproduces it; TestProtocolMDErrorTable
// keeps the two in step.
var codeTable = map[ErrorCode]codeInfo{
	CodeNone:                     {"None", false, "success"},
	CodeOffsetOutOfRange:         {"OffsetOutOfRange", false, "the requested offset is below the log start offset or past the high watermark"},
	CodeCorruptMessage:           {"CorruptMessage", true, "a record batch failed its checksum or is not well formed"},
	CodeUnknownTopicOrPartition:  {"UnknownTopicOrPartition", true, "the broker does not know this topic or partition; its metadata may be stale"},
	CodeInvalidRequest:           {"InvalidRequest", false, "the request is malformed or breaks a rule of the protocol"},
	CodeRequestTooLarge:          {"RequestTooLarge", false, "the request frame is larger than the broker accepts; the broker closes the connection instead of answering"},
	CodeNotLeader:                {"NotLeader", true, "this broker is not the partition's leader; the response names the leader"},
	CodeRequestTimedOut:          {"RequestTimedOut", true, "the request did not complete within its timeout"},
	CodeBackpressure:             {"Backpressure", true, "the broker or topic is at a limit; retry after the response's retry_after_ms"},
	CodeTopicAlreadyExists:       {"TopicAlreadyExists", false, "a topic with this name already exists"},
	CodeInvalidTopic:             {"InvalidTopic", false, "the topic name is not valid"},
	CodeInvalidConfig:            {"InvalidConfig", false, "a configuration key or value is not valid"},
	CodeOutOfOrderSequence:       {"OutOfOrderSequence", false, "the producer's sequence number is not the next one the broker expects"},
	CodeProducerFenced:           {"ProducerFenced", false, "a newer instance of this producer id has taken over (its epoch is higher)"},
	CodeUnsupportedVersion:       {"UnsupportedVersion", false, "the broker does not support this API version"},
	CodeUnknownServerError:       {"UnknownServerError", false, "the broker failed in a way no other code describes"},
	CodeLeaderNotAvailable:       {"LeaderNotAvailable", true, "the partition has no leader at the moment (an election is under way)"},
	CodeInvalidPartitions:        {"InvalidPartitions", false, "the number of partitions is not valid"},
	CodeInvalidReplicationFactor: {"InvalidReplicationFactor", false, "the replication factor is not valid or exceeds the number of brokers"},
	CodeNotController:            {"NotController", true, "this broker is not the metadata controller; ask another broker"},
	CodeMessageTooLarge:          {"MessageTooLarge", false, "a record batch is larger than the topic or broker allows"},
	CodeBrokerShuttingDown:       {"BrokerShuttingDown", true, "the broker is shutting down; send the request to another broker"},
	CodeInvalidGroupID:           {"InvalidGroupID", false, "the group id is empty or too long"},
	CodeGroupIDNotFound:          {"GroupIDNotFound", false, "the coordinator knows no group with this id (no members, no committed offsets)"},
	CodeUnknownMemberID:          {"UnknownMemberID", false, "the group has no member with this id (it left or its session expired); rejoin with member epoch 0"},
	CodeFencedMemberEpoch:        {"FencedMemberEpoch", false, "the member's epoch is stale or it no longer owns the partition; it must stop using the partition and heartbeat (or rejoin) for its current assignment"},
	CodeNonEmptyGroup:            {"NonEmptyGroup", false, "the group has members; the operation needs an empty group"},
	CodeUnsupportedAssignor:      {"UnsupportedAssignor", false, "the broker has no server-side assignor with this name"},
}

// String returns the code's name, or "ErrorCode(n)" for a code this package
// does not know.
func (c ErrorCode) String() string {
	if info, ok := codeTable[c]; ok {
		return info.name
	}
	return "ErrorCode(" + strconv.Itoa(int(c)) + ")"
}

// Retriable reports whether a client may retry a request that failed with c.
// Unknown codes are not retriable.
func (c ErrorCode) Retriable() bool { return codeTable[c].retriable }

// Description says what c means, or "" for an unknown code.
func (c ErrorCode) Description() string { return codeTable[c].description }

// Known reports whether c is in this package's table.
func (c ErrorCode) Known() bool {
	_, ok := codeTable[c]
	return ok
}

// Error is an error code from a response, with the broker's message if it
// sent one. Compare with the sentinels below using errors.Is, which matches
// on the code alone:
//
//	if errors.Is(err, protocol.ErrNotLeader) { ... }
type Error struct {
	Code    ErrorCode
	Message string // the response's error_message, or ""
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.Description()
	}
	if msg == "" {
		return fmt.Sprintf("weir/protocol: %v (%d)", e.Code, int16(e.Code))
	}
	return fmt.Sprintf("weir/protocol: %v (%d): %s", e.Code, int16(e.Code), msg)
}

// Retriable reports whether a client may retry the request (see
// ErrorCode.Retriable).
func (e *Error) Retriable() bool { return e.Code.Retriable() }

// Is makes errors.Is(err, target) true when target is an *Error with the same
// code, whatever the messages.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code
}

// Sentinels, one per error code, for errors.Is. Their messages are empty.
var (
	ErrOffsetOutOfRange         = &Error{Code: CodeOffsetOutOfRange}
	ErrCorruptMessage           = &Error{Code: CodeCorruptMessage}
	ErrUnknownTopicOrPartition  = &Error{Code: CodeUnknownTopicOrPartition}
	ErrInvalidRequest           = &Error{Code: CodeInvalidRequest}
	ErrRequestTooLarge          = &Error{Code: CodeRequestTooLarge}
	ErrNotLeader                = &Error{Code: CodeNotLeader}
	ErrRequestTimedOut          = &Error{Code: CodeRequestTimedOut}
	ErrBackpressure             = &Error{Code: CodeBackpressure}
	ErrTopicAlreadyExists       = &Error{Code: CodeTopicAlreadyExists}
	ErrInvalidTopic             = &Error{Code: CodeInvalidTopic}
	ErrInvalidConfig            = &Error{Code: CodeInvalidConfig}
	ErrOutOfOrderSequence       = &Error{Code: CodeOutOfOrderSequence}
	ErrProducerFenced           = &Error{Code: CodeProducerFenced}
	ErrUnsupportedVersion       = &Error{Code: CodeUnsupportedVersion}
	ErrUnknownServerError       = &Error{Code: CodeUnknownServerError}
	ErrLeaderNotAvailable       = &Error{Code: CodeLeaderNotAvailable}
	ErrInvalidPartitions        = &Error{Code: CodeInvalidPartitions}
	ErrInvalidReplicationFactor = &Error{Code: CodeInvalidReplicationFactor}
	ErrNotController            = &Error{Code: CodeNotController}
	ErrMessageTooLarge          = &Error{Code: CodeMessageTooLarge}
	ErrBrokerShuttingDown       = &Error{Code: CodeBrokerShuttingDown}
	ErrInvalidGroupID           = &Error{Code: CodeInvalidGroupID}
	ErrGroupIDNotFound          = &Error{Code: CodeGroupIDNotFound}
	ErrUnknownMemberID          = &Error{Code: CodeUnknownMemberID}
	ErrFencedMemberEpoch        = &Error{Code: CodeFencedMemberEpoch}
	ErrNonEmptyGroup            = &Error{Code: CodeNonEmptyGroup}
	ErrUnsupportedAssignor      = &Error{Code: CodeUnsupportedAssignor}
)

// ErrorForCode returns the error for a response's error code and message:
// nil for CodeNone, else an *Error (also for codes this package does not
// know, which are then not retriable).
func ErrorForCode(code ErrorCode, msg string) error {
	if code == CodeNone {
		return nil
	}
	return &Error{Code: code, Message: msg}
}

// ErrorForCodeMessage is ErrorForCode for a nullable error_message field.
func ErrorForCodeMessage(code ErrorCode, msg *string) error {
	if msg == nil {
		return ErrorForCode(code, "")
	}
	return ErrorForCode(code, *msg)
}

// CodeOf returns the code to answer err with: CodeNone for nil, the code of
// an *Error, CodeRequestTooLarge for ErrFrameTooLarge, CodeInvalidRequest for
// ErrMalformed, and CodeUnknownServerError for anything else. Errors of other
// packages (a partition's "not leader", a timeout) are the broker's to map.
func CodeOf(err error) ErrorCode {
	var pe *Error
	switch {
	case err == nil:
		return CodeNone
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, ErrFrameTooLarge):
		return CodeRequestTooLarge
	case errors.Is(err, ErrMalformed):
		return CodeInvalidRequest
	default:
		return CodeUnknownServerError
	}
}
