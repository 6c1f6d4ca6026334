package mattermostfake

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
)

// maxRequestBody is Mattermost's default MaxRequestSize-ish bound for
// JSON API bodies.
const maxRequestBody = 10 << 20

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(route string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(route, s.guard(route, true, h))
	}
	api(RouteGetMe, s.getMe)
	api(RouteGetUser, s.getUser)
	api(RouteGetTeamByName, s.getTeamByName)
	api(RouteGetChannelByName, s.getChannelByName)
	api(RouteCreatePost, s.createPost)
	api(RouteGetPost, s.getPost)
	api(RouteUpdatePost, s.updatePost)
	api(RoutePatchPost, s.patchPost)
	api(RouteChannelPosts, s.channelPosts)
	api(RouteDirectChannel, s.directChannel)
	api(RouteOpenDialog, s.openDialog)
	mux.HandleFunc(RouteCommandResponse, s.guard(RouteCommandResponse, false, s.commandResponse))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		appError(w, http.StatusNotFound, "api.context.404.app_error", "mattermostfake does not serve "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// guard counts the call, plays a queued failure, and checks the bearer
// token (auth) as Mattermost does: "Authorization: Bearer TOKEN" or
// "Token TOKEN", any case.
func (s *Server) guard(route string, auth bool, h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[route]++
		var fail *failure
		if q := s.failures[route]; len(q) > 0 {
			fail = &q[0]
			s.failures[route] = q[1:]
		}
		s.mu.Unlock()
		w.Header().Set(model.HeaderRequestId, model.NewId())
		if fail != nil {
			writeFailure(w, *fail)
			return
		}
		if auth && !s.authorized(r) {
			appError(w, http.StatusUnauthorized, "api.context.session_expired.app_error", "token missing or not valid")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		h(w, r)
	}
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get(model.HeaderAuth)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || (!strings.EqualFold(scheme, model.HeaderBearer) && !strings.EqualFold(scheme, model.HeaderToken)) {
		return false
	}
	return token == s.opts.BotToken
}

func writeFailure(w http.ResponseWriter, f failure) {
	if f.status == http.StatusTooManyRequests {
		// Mattermost's rate limiter (throttled) answers in plain text.
		secs := strconv.Itoa(int(math.Ceil(f.retryAfter.Seconds())))
		w.Header().Set("X-Ratelimit-Limit", "10")
		w.Header().Set("X-Ratelimit-Remaining", "0")
		w.Header().Set("X-Ratelimit-Reset", secs)
		w.Header().Set("Retry-After", secs)
		http.Error(w, "limit exceeded", http.StatusTooManyRequests)
		return
	}
	ids := map[int]string{
		http.StatusBadRequest:          "api.context.invalid_param.app_error",
		http.StatusUnauthorized:        "api.context.session_expired.app_error",
		http.StatusForbidden:           "api.context.permissions.app_error",
		http.StatusNotFound:            "app.channel.get.existing.app_error",
		http.StatusInternalServerError: "app.post.save.app_error",
		http.StatusServiceUnavailable:  "api.server.unavailable.app_error",
	}
	id, ok := ids[f.status]
	if !ok {
		id = "api.context.fake_failure.app_error"
	}
	appError(w, f.status, id, "failure injected by FailNext")
}

func appError(w http.ResponseWriter, status int, id, detail string) {
	e := model.NewAppError("mattermostfake", id, nil, detail, status)
	e.RequestId = w.Header().Get(model.HeaderRequestId)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, e.ToJSON())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", err.Error())
		return false
	}
	return true
}

func (s *Server) userJSON(u *user) *model.User {
	return &model.User{Id: u.ID, Username: u.Username, Email: u.Email, IsBot: u.ID == s.botID}
}

func (s *Server) getMe(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u := s.userJSON(s.users[s.botID])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user_id")
	if !model.IsValidId(id) {
		appError(w, http.StatusBadRequest, "api.context.invalid_url_param.app_error", "user_id")
		return
	}
	s.mu.Lock()
	u, ok := s.users[id]
	var out *model.User
	if ok {
		out = s.userJSON(u)
	}
	s.mu.Unlock()
	if !ok {
		appError(w, http.StatusNotFound, "app.user.missing_account.const", "user "+id)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getTeamByName(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	t := s.teamByNameLocked(r.PathValue("team_name"))
	s.mu.Unlock()
	if t == nil {
		appError(w, http.StatusNotFound, "app.team.get_by_name.missing.app_error", "team "+r.PathValue("team_name"))
		return
	}
	writeJSON(w, http.StatusOK, &model.Team{Id: t.ID, Name: t.Name, DisplayName: t.Name, Type: model.TeamOpen})
}

func (s *Server) getChannelByName(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c := s.channelByNameLocked(r.PathValue("team_name"), r.PathValue("channel_name"))
	var out *model.Channel
	if c != nil && c.TeamID != "" {
		out = &model.Channel{Id: c.ID, TeamId: c.TeamID, Name: c.Name, DisplayName: c.Name, Type: c.Type}
	}
	s.mu.Unlock()
	if out == nil {
		appError(w, http.StatusNotFound, "app.channel.get_by_name.missing.app_error", "channel "+r.PathValue("channel_name"))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// forClient is what Mattermost returns for a post: a copy without the
// buttons' integrations, which stay server-side.
func forClient(p *model.Post) *model.Post {
	c := clonePost(p)
	c.StripActionIntegrations()
	return c
}

// clonePost deep-copies a post through JSON (props become JSON values, as
// they are after a round trip through Mattermost's database).
func clonePost(p *model.Post) *model.Post {
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("mattermostfake: marshal post: %v", err))
	}
	var c model.Post
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("mattermostfake: unmarshal post: %v", err))
	}
	return &c
}

// validatePost applies Mattermost's checks: Post.IsValid and, for the
// props, the attachment rules that Mattermost logs today and will enforce.
func validatePost(p *model.Post) *model.AppError {
	if err := p.IsValid(MaxMessageRunes); err != nil {
		return err
	}
	for i, a := range p.Attachments() {
		if err := a.IsValid(); err != nil {
			return model.NewAppError("mattermostfake", "model.post.is_valid.props.app_error", nil, fmt.Sprintf("attachment %d: %v", i, err), http.StatusBadRequest)
		}
	}
	for _, key := range []string{model.PostPropsMentionHighlightDisabled, model.PostPropsGroupHighlightDisabled} {
		if v := p.GetProp(key); v != nil {
			if _, ok := v.(bool); !ok {
				return model.NewAppError("mattermostfake", "model.post.is_valid.props.app_error", nil, key+" must be a boolean", http.StatusBadRequest)
			}
		}
	}
	return nil
}

func writeAppError(w http.ResponseWriter, e *model.AppError) {
	appError(w, e.StatusCode, e.Id, e.DetailedError)
}

func (s *Server) createPost(w http.ResponseWriter, r *http.Request) {
	var in model.Post
	if !decode(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channels[in.ChannelId]
	if c == nil || !c.Members[s.botID] {
		appError(w, http.StatusForbidden, "api.context.permissions.app_error", "no create_post permission in channel "+in.ChannelId)
		return
	}
	if in.RootId != "" {
		root, ok := s.posts[in.RootId]
		if !ok || root.post.ChannelId != in.ChannelId || root.post.RootId != "" || root.post.DeleteAt != 0 {
			appError(w, http.StatusBadRequest, "api.post.create_post.root_id.app_error", "root_id "+in.RootId)
			return
		}
	}
	p := clonePost(&in)
	p.Id = model.NewId()
	p.UserId = s.botID
	p.CreateAt = s.nowMillisLocked()
	p.UpdateAt, p.EditAt, p.DeleteAt = p.CreateAt, 0, 0
	p.AddProp(model.PostPropsFromBot, "true")
	if err := validatePost(p); err != nil {
		writeAppError(w, err)
		return
	}
	s.posts[p.Id] = &storedPost{post: clonePost(p)}
	s.postOrder = append(s.postOrder, p.Id)
	writeJSON(w, http.StatusCreated, forClient(p))
}

func (s *Server) getPost(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.posts[r.PathValue("post_id")]
	if !ok || sp.post.DeleteAt != 0 || !s.channels[sp.post.ChannelId].Members[s.botID] {
		appError(w, http.StatusNotFound, "app.post.get.app_error", "post "+r.PathValue("post_id"))
		return
	}
	writeJSON(w, http.StatusOK, forClient(sp.post))
}

// editable finds the post id of the path that the bot may edit.
func (s *Server) editableLocked(w http.ResponseWriter, id string) *storedPost {
	sp, ok := s.posts[id]
	if !ok || sp.post.DeleteAt != 0 {
		appError(w, http.StatusNotFound, "app.post.get.app_error", "post "+id)
		return nil
	}
	if sp.post.UserId != s.botID || !s.channels[sp.post.ChannelId].Members[s.botID] {
		appError(w, http.StatusForbidden, "api.context.permissions.app_error", "no edit_post permission on "+id)
		return nil
	}
	return sp
}

// saveEditLocked validates and stores an edited post.
func (s *Server) saveEditLocked(w http.ResponseWriter, sp *storedPost, edited *model.Post) {
	edited.AddProp(model.PostPropsFromBot, "true")
	edited.UpdateAt = s.nowMillisLocked()
	if edited.Message != sp.post.Message {
		edited.EditAt = edited.UpdateAt
	}
	if err := validatePost(edited); err != nil {
		writeAppError(w, err)
		return
	}
	sp.post = clonePost(edited)
	sp.edits++
	writeJSON(w, http.StatusOK, forClient(edited))
}

// updatePost is PUT /posts/{id}: the body's message, props and file ids
// replace the post's.
func (s *Server) updatePost(w http.ResponseWriter, r *http.Request) {
	var in model.Post
	if !decode(w, r, &in) {
		return
	}
	id := r.PathValue("post_id")
	if in.Id != id {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", "post.id does not match the URL")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.editableLocked(w, id)
	if sp == nil {
		return
	}
	edited := clonePost(sp.post)
	edited.Message = in.Message
	edited.SetProps(clonePost(&in).GetProps())
	edited.FileIds = in.FileIds
	s.saveEditLocked(w, sp, edited)
}

// patchPost is PUT /posts/{id}/patch: the fields present replace the
// post's (props as a whole).
func (s *Server) patchPost(w http.ResponseWriter, r *http.Request) {
	var patch model.PostPatch
	if !decode(w, r, &patch) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.editableLocked(w, r.PathValue("post_id"))
	if sp == nil {
		return
	}
	edited := clonePost(sp.post)
	edited.Patch(&patch)
	s.saveEditLocked(w, sp, clonePost(edited))
}

// channelPosts is GET /channels/{id}/posts: with since (ms), the posts
// changed after it; otherwise a page (page, per_page) of the newest.
func (s *Server) channelPosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, _ := strconv.ParseInt(q.Get("since"), 10, 64)
	page, _ := strconv.Atoi(q.Get("page"))
	perPage, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || perPage <= 0 {
		perPage = 60
	}
	perPage = min(perPage, 200)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channels[r.PathValue("channel_id")]
	if c == nil || !c.Members[s.botID] {
		appError(w, http.StatusForbidden, "api.context.permissions.app_error", "no read_channel permission")
		return
	}
	var posts []*model.Post
	for _, id := range s.postOrder {
		p := s.posts[id].post
		if p.ChannelId != c.ID {
			continue
		}
		if since > 0 && p.UpdateAt <= since {
			continue
		}
		if since <= 0 && p.DeleteAt != 0 {
			continue
		}
		posts = append(posts, p)
	}
	sort.SliceStable(posts, func(i, j int) bool { return posts[i].CreateAt > posts[j].CreateAt })
	if since <= 0 {
		start := min(page*perPage, len(posts))
		posts = posts[start:min(start+perPage, len(posts))]
	}
	list := model.NewPostList()
	for _, p := range posts {
		list.AddPost(forClient(p))
		list.AddOrder(p.Id)
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) directChannel(w http.ResponseWriter, r *http.Request) {
	var ids []string
	if !decode(w, r, &ids) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ids) != 2 {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", "want two user ids")
		return
	}
	for _, id := range ids {
		if _, ok := s.users[id]; !ok || !model.IsValidId(id) {
			appError(w, http.StatusBadRequest, "api.channel.create_direct_channel.invalid_user.app_error", "user "+id)
			return
		}
	}
	if ids[0] != s.botID && ids[1] != s.botID {
		appError(w, http.StatusForbidden, "api.context.permissions.app_error", "the caller must be one of the users")
		return
	}
	name := directName(ids[0], ids[1])
	c := s.channelByNameLocked("", name)
	if c == nil {
		c = &channel{ID: model.NewId(), Name: name, Type: model.ChannelTypeDirect, Members: map[string]bool{ids[0]: true, ids[1]: true}}
		s.channels[c.ID] = c
	}
	writeJSON(w, http.StatusCreated, &model.Channel{Id: c.ID, Name: c.Name, Type: model.ChannelTypeDirect})
}

func (s *Server) openDialog(w http.ResponseWriter, r *http.Request) {
	var req model.OpenDialogRequest
	if !decode(w, r, &req) {
		return
	}
	clientTriggerID, userID, appErr := model.DecodeAndVerifyTriggerId(req.TriggerId, s.triggerKey, TriggerTimeout)
	if appErr != nil {
		writeAppError(w, appErr)
		return
	}
	if err := req.IsValid(); err != nil {
		appError(w, http.StatusBadRequest, "app.dialog.open.invalid.app_error", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	where := s.triggers[clientTriggerID]
	s.dialogs = append(s.dialogs, Dialog{TriggerID: req.TriggerId, UserID: userID, ChannelID: where.ChannelID, TeamID: where.TeamID, URL: req.URL, Dialog: req.Dialog})
	writeJSON(w, http.StatusOK, map[string]string{"status": "OK"})
}

// commandResponse is a slash command's response_url.
func (s *Server) commandResponse(w http.ResponseWriter, r *http.Request) {
	var resp model.CommandResponse
	body, err := io.ReadAll(r.Body)
	if err != nil {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", err.Error())
		return
	}
	parsed, err := model.CommandResponseFromHTTPBody(r.Header.Get("Content-Type"), strings.NewReader(string(body)))
	if err != nil || parsed == nil {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", fmt.Sprint(err))
		return
	}
	resp = *parsed
	s.mu.Lock()
	defer s.mu.Unlock()
	hook := s.hooks[r.PathValue("hook_id")]
	if hook == nil || time.Since(hook.Created) > ResponseURLTTL || hook.Uses >= ResponseURLUses {
		appError(w, http.StatusNotFound, "web.command_webhook.invalid.app_error", "unknown or used-up response_url")
		return
	}
	hook.Uses++
	s.showCommandResponseLocked(hook.UserID, hook.ChannelID, &resp)
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
}

// showCommandResponseLocked makes the posts Mattermost makes of a command
// response: ephemeral for the caller, or a channel post for in_channel.
func (s *Server) showCommandResponseLocked(userID, channelID string, resp *model.CommandResponse) {
	atts := resp.Attachments
	p := &model.Post{Id: model.NewId(), ChannelId: channelID, Message: resp.Text}
	if len(atts) > 0 {
		p.AddProp(model.PostPropsAttachments, atts)
	}
	p.GenerateActionIds()
	if resp.ResponseType == model.CommandResponseTypeInChannel {
		p.UserId = userID
		p.CreateAt = s.nowMillisLocked()
		p.UpdateAt = p.CreateAt
		s.posts[p.Id] = &storedPost{post: clonePost(p)}
		s.postOrder = append(s.postOrder, p.Id)
		return
	}
	m := messageOf(clonePost(p), 0)
	m.UserID, m.Ephemeral = userID, true
	s.ephemeral = append(s.ephemeral, m)
}
