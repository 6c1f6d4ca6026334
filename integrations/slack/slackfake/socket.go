package slackfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// socketPath is where apps.connections.open sends the app.
const socketPath = "/socket-mode/link"

// socketPingInterval: Slack pings the app; slack-go reconnects after 30 s
// without a ping.
const socketPingInterval = 5 * time.Second

// socketState is the one Socket Mode connection the fake serves (the
// latest one the app opened).
type socketState struct {
	mu       sync.Mutex
	conn     *websocket.Conn
	up       chan struct{} // closed while a connection is up
	acks     map[string]chan json.RawMessage
	last     []byte // the last envelope sent, for ResendEnvelope
	seq      int
	closed   bool
	writeMu  sync.Mutex // gorilla/websocket allows one writer at a time
	handlers sync.WaitGroup
}

func newSocketState() *socketState {
	return &socketState{up: make(chan struct{}), acks: make(map[string]chan json.RawMessage)}
}

// serveSocket runs one Socket Mode connection: hello, pings, and acks read
// back to whoever sent the envelope.
func (s *Server) serveSocket(c *websocket.Conn) {
	st := s.socket
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.handlers.Add(1)
	defer st.handlers.Done()
	if st.conn != nil {
		_ = st.conn.Close()
	}
	st.conn = c
	st.mu.Unlock()

	hello := map[string]any{
		"type": "hello", "num_connections": 1,
		"debug_info":      map[string]any{"host": "applink-slackfake", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": AppID},
	}
	if err := st.write(c, hello); err != nil {
		return
	}
	st.mu.Lock()
	if st.conn == c {
		close(st.up)
	}
	st.mu.Unlock()

	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(socketPingInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				st.writeMu.Lock()
				err := c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
				st.writeMu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()

	defer func() {
		st.mu.Lock()
		if st.conn == c {
			st.conn = nil
			st.up = make(chan struct{})
		}
		st.mu.Unlock()
	}()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		st.mu.Lock()
		ch := st.acks[ack.EnvelopeID]
		delete(st.acks, ack.EnvelopeID)
		st.mu.Unlock()
		if ch != nil {
			ch <- ack.Payload
		}
	}
}

func (st *socketState) write(c *websocket.Conn, v any) error {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.WriteJSON(v)
}

func (st *socketState) close() {
	st.mu.Lock()
	st.closed = true
	if st.conn != nil {
		_ = st.conn.Close()
	}
	st.mu.Unlock()
	st.handlers.Wait()
}

// WaitSocketConnected waits until the app holds a Socket Mode connection
// (it called apps.connections.open, dialled, and got hello).
func (s *Server) WaitSocketConnected(timeout time.Duration) error {
	st := s.socket
	st.mu.Lock()
	up := st.up
	st.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("slackfake: no socket mode connection after %s", timeout)
	}
}

// sendEnvelope sends one envelope and waits AckTimeout for the app's ack,
// returning the ack's payload (nil when it had none).
func (s *Server) sendEnvelope(raw []byte, envelopeID string) (json.RawMessage, error) {
	st := s.socket
	if err := s.WaitSocketConnected(AckTimeout); err != nil {
		return nil, err
	}
	ch := make(chan json.RawMessage, 1)
	st.mu.Lock()
	c := st.conn
	st.acks[envelopeID] = ch
	st.last = raw
	st.mu.Unlock()
	if c == nil {
		return nil, errors.New("slackfake: socket mode connection went away")
	}
	st.writeMu.Lock()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err := c.WriteMessage(websocket.TextMessage, raw)
	st.writeMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("slackfake: sending envelope: %w", err)
	}
	select {
	case p := <-ch:
		if string(p) == "null" {
			p = nil
		}
		return p, nil
	case <-time.After(AckTimeout):
		st.mu.Lock()
		delete(st.acks, envelopeID)
		st.mu.Unlock()
		return nil, fmt.Errorf("slackfake: envelope %s not acknowledged within %s", envelopeID, AckTimeout)
	}
}

func (s *Server) envelope(typ string, payload any, acceptsResponse bool) (json.RawMessage, error) {
	st := s.socket
	st.mu.Lock()
	st.seq++
	id := fmt.Sprintf("%08x-0000-4000-8000-%012d", time.Now().UnixNano()&0xffffffff, st.seq)
	st.mu.Unlock()
	raw, err := json.Marshal(map[string]any{
		"envelope_id": id, "type": typ, "payload": payload, "accepts_response_payload": acceptsResponse,
		"retry_attempt": 0, "retry_reason": "",
	})
	if err != nil {
		return nil, err
	}
	return s.sendEnvelope(raw, id)
}

// ResendEnvelope sends the last envelope again, same envelope id, as Slack
// does when an ack came too late (retry_attempt 1).
func (s *Server) ResendEnvelope() (json.RawMessage, error) {
	st := s.socket
	st.mu.Lock()
	last := st.last
	st.mu.Unlock()
	if last == nil {
		return nil, errors.New("slackfake: no envelope sent yet")
	}
	var env map[string]any
	if err := json.Unmarshal(last, &env); err != nil {
		return nil, err
	}
	env["retry_attempt"], env["retry_reason"] = 1, "timeout"
	raw, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return s.sendEnvelope(raw, env["envelope_id"].(string))
}

// SocketSlashCommand sends "/access text" as u over Socket Mode and returns
// the ack's payload. The response_url points at the fake, as over HTTP.
func (s *Server) SocketSlashCommand(u User, text string, opts ...RequestOption) (json.RawMessage, error) {
	o := s.options(opts)
	cmd := s.slashCommandPayload(u, text, o)
	return s.envelope("slash_commands", map[string]any{
		"token": cmd.Token, "team_id": cmd.TeamID, "team_domain": cmd.TeamDomain, "channel_id": cmd.ChannelID,
		"channel_name": cmd.ChannelName, "user_id": cmd.UserID, "user_name": cmd.UserName, "command": cmd.Command,
		"text": cmd.Text, "api_app_id": cmd.APIAppID, "is_enterprise_install": "false",
		"response_url": cmd.ResponseURL, "trigger_id": cmd.TriggerID,
	}, true)
}

// SocketClickButton clicks a button over Socket Mode (see ClickButton).
func (s *Server) SocketClickButton(u User, msg Message, actionID string) (json.RawMessage, error) {
	p, err := s.blockActionPayload(u, msg, actionID)
	if err != nil {
		return nil, err
	}
	return s.envelope("interactive", p, false)
}

// SocketSubmitView submits a modal over Socket Mode (see SubmitView) and
// returns the ack's payload: the app's response_action.
func (s *Server) SocketSubmitView(u User, view View, values map[string]string) (json.RawMessage, error) {
	p, err := s.viewSubmissionPayload(u, view, values)
	if err != nil {
		return nil, err
	}
	return s.envelope("interactive", p, true)
}
