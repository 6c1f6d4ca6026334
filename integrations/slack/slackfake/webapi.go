package slackfake

import (
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// apiCall is one Web API request, decoded.
type apiCall struct {
	method string
	form   url.Values      // form body (or query)
	json   json.RawMessage // JSON body
}

// result is what a method answers: fields merged into {"ok":true,...}, or
// an error code for {"ok":false,"error":code}.
type result struct {
	fields map[string]any
	code   string
}

func ok(fields map[string]any) result { return result{fields: fields} }
func fail(code string) result         { return result{code: code} }

// bind registers the fake's handlers on slacktest's mux before its own
// defaults, so these win.
func (s *Server) bind(c slacktest.Customize) {
	bot := func(name string, fn func(apiCall) result) {
		c.Handle("/"+name, s.method(name, s.BotToken, fn))
	}
	bot("chat.postMessage", s.postMessage)
	bot("chat.update", s.update)
	bot("conversations.history", s.history)
	bot("conversations.replies", s.replies)
	bot("conversations.list", s.list)
	bot("conversations.open", s.open)
	bot("users.info", s.usersInfo)
	bot("views.open", s.viewsOpen)
	c.Handle("/apps.connections.open", s.method("apps.connections.open", s.AppToken, s.connectionsOpen))
	c.Handle("/response-url/", s.serveResponseURL)
	c.Handle(socketPath, slacktest.Websocket(s.serveSocket))
}

// method wraps a Web API method: counting, injected failures, the token
// check and Slack's JSON envelope.
func (s *Server) method(name, token string, fn func(apiCall) result) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		call, err := decodeCall(name, r)
		s.mu.Lock()
		s.calls[name]++
		var f *failure
		if q := s.failures[name]; len(q) > 0 {
			f = &q[0]
			s.failures[name] = q[1:]
		}
		s.mu.Unlock()

		if f != nil && !f.afterApply {
			writeFailure(w, *f)
			return
		}
		var res result
		switch got := bearerOrForm(r, call); {
		case err != nil:
			res = fail("invalid_form_data")
		case got == "":
			res = fail("not_authed")
		case got != token:
			res = fail("invalid_auth")
		default:
			res = fn(call)
		}
		if f != nil {
			writeFailure(w, *f)
			return
		}
		writeResult(w, res)
	}
}

func decodeCall(name string, r *http.Request) (apiCall, error) {
	call := apiCall{method: name, form: r.URL.Query()}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return call, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		call.json = body
	default:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return call, err
		}
		for k, v := range form {
			call.form[k] = v
		}
	}
	return call, nil
}

// bearerOrForm is the token, from the Authorization header or the token
// field, the two ways Slack accepts.
func bearerOrForm(r *http.Request, call apiCall) string {
	if tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
		return tok
	}
	return call.form.Get("token")
}

func writeFailure(w http.ResponseWriter, f failure) {
	switch {
	case f.code != "":
		writeResult(w, fail(f.code))
	case f.status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.retryAfter.Seconds()))))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
	default:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, "<html><body>"+http.StatusText(f.status)+"</body></html>")
	}
}

func writeResult(w http.ResponseWriter, res result) { writeStatusResult(w, http.StatusOK, res) }

func writeStatusResult(w http.ResponseWriter, status int, res result) {
	body := map[string]any{"ok": res.code == ""}
	if res.code != "" {
		body["error"] = res.code
	}
	for k, v := range res.fields {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// channelFor resolves the channel argument of chat.postMessage: an id, a
// "#name" or name, or a user id (Slack posts to the app's DM with the
// user). s.mu held.
func (s *Server) channelFor(arg string) (*channel, string) {
	if arg == "" {
		return nil, "channel_not_found"
	}
	if c, found := s.channels[arg]; found {
		if c.Private && c.NotMember && c.dmUser == "" {
			return nil, "channel_not_found"
		}
		return c, ""
	}
	if _, found := s.users[arg]; found {
		return s.dmChannel(arg), ""
	}
	name := strings.TrimPrefix(arg, "#")
	for _, id := range s.order {
		if c := s.channels[id]; c.Name == name && !(c.Private && c.NotMember) {
			return c, ""
		}
	}
	return nil, "channel_not_found"
}

// readable is a channel whose history the bot may read. s.mu held.
func (s *Server) readable(id string) (*channel, string) {
	c, found := s.channels[id]
	if !found || (c.Private && c.NotMember && c.dmUser == "") {
		return nil, "channel_not_found"
	}
	if c.NotMember {
		return nil, "not_in_channel"
	}
	return c, ""
}

// checkMessage validates text, blocks and metadata as chat.postMessage and
// chat.update do.
func checkMessage(form url.Values) (parsedBlocks, *slackgo.SlackMetadata, string) {
	text := form.Get("text")
	if chars(text) > maxMessageText {
		return parsedBlocks{}, nil, "msg_too_long"
	}
	blocks, err := parseBlocks(form.Get("blocks"), maxMessageBlocks)
	if err != nil {
		return parsedBlocks{}, nil, "invalid_blocks"
	}
	var meta *slackgo.SlackMetadata
	if raw := form.Get("metadata"); raw != "" {
		meta = &slackgo.SlackMetadata{}
		if err := json.Unmarshal([]byte(raw), meta); err != nil {
			return parsedBlocks{}, nil, "invalid_metadata_format"
		}
		if meta.EventType == "" || meta.EventPayload == nil {
			return parsedBlocks{}, nil, "invalid_metadata_schema"
		}
	}
	return blocks, meta, ""
}

func applyContent(m *message, form url.Values, blocks parsedBlocks, meta *slackgo.SlackMetadata) {
	m.Text = form.Get("text")
	m.Blocks = blocks.raw
	m.Rendered = blocks.rendered
	m.Buttons = blocks.actionIDs()
	if meta != nil {
		m.metadata = meta
		m.MetadataType = meta.EventType
		m.OutboxID, _ = meta.EventPayload["outbox_id"].(string)
		m.RequestID, _ = meta.EventPayload["request_id"].(string)
	}
}

func (s *Server) postMessage(call apiCall) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.channelFor(call.form.Get("channel"))
	if code != "" {
		return fail(code)
	}
	if c.Archived {
		return fail("is_archived")
	}
	if call.form.Get("text") == "" && call.form.Get("blocks") == "" {
		return fail("no_text")
	}
	blocks, meta, code := checkMessage(call.form)
	if code != "" {
		return fail(code)
	}
	threadTS := call.form.Get("thread_ts")
	if threadTS != "" && !slices.ContainsFunc(c.messages, func(m *message) bool { return m.TS == threadTS && m.ThreadTS == "" }) {
		return fail("thread_not_found")
	}
	m := &message{Message: Message{Channel: c.ID, TS: s.nextTS(), ThreadTS: threadTS}}
	applyContent(m, call.form, blocks, meta)
	c.messages = append(c.messages, m)
	s.notify()
	return ok(map[string]any{"channel": c.ID, "ts": m.TS, "message": wireMessage(m, true)})
}

func (s *Server) update(call apiCall) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.channelFor(call.form.Get("channel"))
	if code != "" {
		return fail(code)
	}
	ts := call.form.Get("ts")
	i := slices.IndexFunc(c.messages, func(m *message) bool { return m.TS == ts })
	if i < 0 {
		return fail("message_not_found")
	}
	blocks, meta, code := checkMessage(call.form)
	if code != "" {
		return fail(code)
	}
	m := c.messages[i]
	// An update without metadata keeps the message's metadata, as Slack
	// documents for chat.update.
	applyContent(m, call.form, blocks, meta)
	m.Edits++
	s.notify()
	return ok(map[string]any{"channel": c.ID, "ts": m.TS, "text": m.Text})
}

// wireMessage is a message as conversations.history returns it; metadata
// only with include_all_metadata.
func wireMessage(m *message, withMetadata bool) map[string]any {
	w := map[string]any{"type": "message", "user": BotUserID, "bot_id": BotID, "app_id": AppID, "text": m.Text, "ts": m.TS}
	if m.ThreadTS != "" {
		w["thread_ts"] = m.ThreadTS
	}
	if len(m.Blocks) > 0 {
		w["blocks"] = m.Blocks
	}
	if withMetadata && m.metadata != nil {
		w["metadata"] = m.metadata
	}
	return w
}

// page applies Slack's cursor pagination to n items: the cursor is an
// offset, limit defaults to def and is capped by the server's page size.
func (s *Server) page(form url.Values, n, def int) (from, to int, next string) {
	limit, _ := strconv.Atoi(form.Get("limit"))
	if limit <= 0 {
		limit = def
	}
	if s.pageSize > 0 && limit > s.pageSize {
		limit = s.pageSize
	}
	if c := form.Get("cursor"); c != "" {
		from, _ = strconv.Atoi(strings.TrimPrefix(c, "offset:"))
	}
	from = min(max(from, 0), n)
	to = min(from+limit, n)
	if to < n {
		next = "offset:" + strconv.Itoa(to)
	}
	return from, to, next
}

// inRange applies oldest/latest/inclusive to a ts.
func inRange(form url.Values, ts string) bool {
	incl := form.Get("inclusive") == "1" || form.Get("inclusive") == "true"
	t, _ := strconv.ParseFloat(ts, 64)
	if o := form.Get("oldest"); o != "" {
		of, _ := strconv.ParseFloat(o, 64)
		if t < of || (t == of && !incl) {
			return false
		}
	}
	if l := form.Get("latest"); l != "" {
		lf, _ := strconv.ParseFloat(l, 64)
		if t > lf || (t == lf && !incl) {
			return false
		}
	}
	return true
}

func metadataWanted(form url.Values) bool {
	v := form.Get("include_all_metadata")
	return v == "1" || v == "true"
}

func (s *Server) history(call apiCall) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.readable(call.form.Get("channel"))
	if code != "" {
		return fail(code)
	}
	var msgs []*message
	for i := len(c.messages) - 1; i >= 0; i-- { // newest first
		if m := c.messages[i]; m.ThreadTS == "" && inRange(call.form, m.TS) {
			msgs = append(msgs, m)
		}
	}
	from, to, next := s.page(call.form, len(msgs), 100)
	out := []map[string]any{}
	for _, m := range msgs[from:to] {
		out = append(out, wireMessage(m, metadataWanted(call.form)))
	}
	return ok(map[string]any{"messages": out, "has_more": next != "", "response_metadata": map[string]any{"next_cursor": next}})
}

func (s *Server) replies(call apiCall) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.readable(call.form.Get("channel"))
	if code != "" {
		return fail(code)
	}
	ts := call.form.Get("ts")
	var msgs []*message
	for _, m := range c.messages { // parent first, then replies, oldest first
		if (m.TS == ts || m.ThreadTS == ts) && inRange(call.form, m.TS) {
			msgs = append(msgs, m)
		}
	}
	if !slices.ContainsFunc(c.messages, func(m *message) bool { return m.TS == ts }) {
		return fail("thread_not_found")
	}
	from, to, next := s.page(call.form, len(msgs), 100)
	out := []map[string]any{}
	for _, m := range msgs[from:to] {
		out = append(out, wireMessage(m, metadataWanted(call.form)))
	}
	return ok(map[string]any{"messages": out, "has_more": next != "", "response_metadata": map[string]any{"next_cursor": next}})
}

func (s *Server) list(call apiCall) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	types := call.form.Get("types")
	if types == "" {
		types = "public_channel"
	}
	want := strings.Split(types, ",")
	var visible []map[string]any
	for _, id := range s.order {
		c := s.channels[id]
		kind := "public_channel"
		if c.Private {
			kind = "private_channel"
		}
		if !slices.Contains(want, kind) || (c.Private && c.NotMember) {
			continue
		}
		if c.Archived && (call.form.Get("exclude_archived") == "true" || call.form.Get("exclude_archived") == "1") {
			continue
		}
		visible = append(visible, map[string]any{
			"id": c.ID, "name": c.Name, "name_normalized": c.Name, "is_channel": !c.Private, "is_group": false,
			"is_private": c.Private, "is_archived": c.Archived, "is_member": !c.NotMember, "context_team_id": s.TeamID,
		})
	}
	from, to, next := s.page(call.form, len(visible), 100)
	return ok(map[string]any{"channels": append([]map[string]any{}, visible[from:to]...), "response_metadata": map[string]any{"next_cursor": next}})
}

func (s *Server) open(call apiCall) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	users := strings.Split(call.form.Get("users"), ",")
	if call.form.Get("users") == "" {
		return fail("users_list_not_supplied")
	}
	if len(users) != 1 {
		// Group DMs are not something Gatehouse opens.
		return fail("method_not_supported_for_channel_type")
	}
	if _, found := s.users[users[0]]; !found {
		return fail("user_not_found")
	}
	_, already := s.dmOf[users[0]]
	c := s.dmChannel(users[0])
	return ok(map[string]any{"channel": map[string]any{"id": c.ID}, "already_open": already, "no_op": already})
}

func (s *Server) usersInfo(call apiCall) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, found := s.users[call.form.Get("user")]
	if !found {
		return fail("user_not_found")
	}
	return ok(map[string]any{"user": map[string]any{
		"id": u.ID, "team_id": u.TeamID, "name": u.Name, "real_name": u.Name, "is_bot": false,
		"profile": map[string]any{"email": u.Email, "real_name": u.Name, "display_name": u.Name, "team": u.TeamID},
	}})
}

func (s *Server) viewsOpen(call apiCall) result {
	var req struct {
		TriggerID string          `json:"trigger_id"`
		View      json.RawMessage `json:"view"`
	}
	if err := json.Unmarshal(call.json, &req); err != nil {
		return fail("invalid_json")
	}
	var view slackgo.ModalViewRequest
	if err := json.Unmarshal(req.View, &view); err != nil {
		return fail("invalid_arguments")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tr, found := s.triggers[req.TriggerID]
	switch {
	case !found:
		return fail("invalid_trigger_id")
	case tr.used:
		return fail("trigger_exchanged")
	case time.Since(tr.issued) > TriggerTTL:
		return fail("expired_trigger_id")
	}
	if view.Type != slackgo.VTModal || view.Title == nil || chars(view.Title.Text) > maxModalTitle ||
		(view.Submit != nil && chars(view.Submit.Text) > maxModalTitle) || (view.Close != nil && chars(view.Close.Text) > maxModalTitle) ||
		chars(view.PrivateMetadata) > maxPrivateMeta || chars(view.CallbackID) > maxID {
		return fail("invalid_arguments")
	}
	blocksJSON, _ := json.Marshal(view.Blocks)
	blocks, err := parseBlocks(string(blocksJSON), maxModalBlocks)
	if err != nil {
		return fail("invalid_arguments")
	}
	if len(blocks.inputs) > 0 && view.Submit == nil {
		// Slack requires a submit button on a modal with inputs.
		return fail("invalid_arguments")
	}
	tr.used = true
	v := View{
		ID: s.nextID("V"), UserID: tr.user.ID, TriggerID: req.TriggerID, CallbackID: view.CallbackID,
		PrivateMetadata: view.PrivateMetadata, Title: view.Title.Text, Blocks: blocks.raw, Rendered: blocks.rendered, Inputs: blocks.inputs,
	}
	s.views = append(s.views, v)
	s.notify()
	return ok(map[string]any{"view": map[string]any{
		"id": v.ID, "team_id": s.TeamID, "type": "modal", "callback_id": v.CallbackID, "private_metadata": v.PrivateMetadata,
		"blocks": v.Blocks, "app_id": AppID, "bot_id": BotID, "root_view_id": v.ID,
	}})
}

func (s *Server) connectionsOpen(apiCall) result {
	return ok(map[string]any{"url": "ws://" + s.srv.ServerAddr + socketPath + "?ticket=" + strconv.FormatInt(time.Now().UnixNano(), 36)})
}

// serveResponseURL records what the app posts to a response_url: a JSON
// message, at most ResponseURLUses times within ResponseURLTTL.
func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var msg slackgo.Msg
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if ct != "application/json" || json.Unmarshal(body, &msg) != nil {
		writeResult(w, fail("invalid_payload"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, found := s.respURLs[r.URL.Path]
	switch {
	case !found:
		writeStatusResult(w, http.StatusNotFound, fail("no_such_url"))
		return
	case u.uses >= ResponseURLUses || time.Since(u.issued) > ResponseURLTTL:
		writeStatusResult(w, http.StatusNotFound, fail("expired_url"))
		return
	}
	var blocksJSON string
	if len(msg.Blocks.BlockSet) > 0 {
		b, _ := json.Marshal(msg.Blocks)
		blocksJSON = string(b)
	}
	if chars(msg.Text) > maxMessageText {
		writeResult(w, fail("msg_too_long"))
		return
	}
	blocks, err := parseBlocks(blocksJSON, maxMessageBlocks)
	if err != nil {
		writeResult(w, fail("invalid_blocks"))
		return
	}
	u.uses++
	resp := Response{
		Message: Message{Channel: u.channel, Text: msg.Text, Blocks: blocks.raw, Rendered: blocks.rendered,
			Buttons: blocks.actionIDs(), Ephemeral: msg.ResponseType != slackgo.ResponseTypeInChannel},
		URL: s.base + r.URL.Path, UserID: u.user.ID, ResponseType: msg.ResponseType,
		ReplaceOriginal: msg.ReplaceOriginal, DeleteOriginal: msg.DeleteOriginal,
	}
	if resp.ResponseType == "" {
		resp.ResponseType = slackgo.ResponseTypeEphemeral
	}
	s.responses = append(s.responses, resp)
	s.notify()
	writeResult(w, ok(nil))
}
