package access

import (
	"context"
	"time"
)

// OutboxMessage is a side effect (a chat card, a DM, a PagerDuty incident)
// written in the same transaction as the state change that causes it and
// delivered at least once by the elected worker of its platform. Its ID is
// the idempotency key the receiving side sees (PagerDuty incident_key,
// Slack metadata, Discord nonce), so a redelivery finds the first one.
type OutboxMessage struct {
	ID        string    `json:"id"`
	Platform  string    `json:"platform"` // pagerduty | slack | discord | mattermost
	Kind      string    `json:"kind"`     // incident, card, ...
	RequestID string    `json:"request_id,omitempty"`
	Target    string    `json:"target,omitempty"` // service, channel or user on the platform
	Title     string    `json:"title,omitempty"`
	Body      string    `json:"body,omitempty"`
	Created   time.Time `json:"created"`
	// Seq orders the messages written by one transaction (same Created):
	// they are delivered in the order the state change listed them.
	Seq int `json:"seq,omitempty"`
	// Delivery state, kept by the worker.
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	Revision    int64     `json:"revision,omitempty"`
}

// Effects are what a state change writes besides the request, in the same
// transaction.
type Effects struct {
	Audit  []AuditEvent
	Outbox []OutboxMessage
}

// Outbox kinds and platforms.
const (
	PlatformPagerDuty = "pagerduty"
	OutboxIncident    = "incident"
)

// OutboxStore keeps undelivered side effects.
type OutboxStore interface {
	// ListOutbox returns the undelivered messages of a platform, oldest
	// first.
	ListOutbox(ctx context.Context, platform string) ([]OutboxMessage, error)
	// UpdateOutbox records an attempt (compare on Revision) and returns m
	// with its new Revision.
	UpdateOutbox(ctx context.Context, m OutboxMessage) (OutboxMessage, error)
	// DeleteOutbox removes a delivered message with its audit events.
	DeleteOutbox(ctx context.Context, m OutboxMessage, events ...AuditEvent) error
}
