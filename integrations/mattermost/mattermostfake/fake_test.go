package mattermostfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/gatehouse-dev/gatehouse/integrations/mattermost/mattermostfake"
)

func botClient(mm *mattermostfake.Server, token string) *model.Client4 {
	c := model.NewAPIv4Client(mm.URL)
	c.SetToken(token)
	return c
}

func TestAPIRefusesAWrongTokenWithAnAppError(t *testing.T) {
	mm := mattermostfake.New(mattermostfake.Options{})
	defer mm.Close()
	_, resp, err := botClient(mm, "wrong").GetMe(context.Background(), "")
	var appErr *model.AppError
	if resp == nil || resp.StatusCode != 401 || !errors.As(err, &appErr) || appErr.Id != "api.context.session_expired.app_error" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	me, _, err := botClient(mm, mm.BotToken()).GetMe(context.Background(), "")
	if err != nil || me.Id != mm.BotUserID() || !me.IsBot {
		t.Fatalf("me %+v err %v", me, err)
	}
}

func buttonPost(channel, url string) *model.Post {
	return &model.Post{ChannelId: channel, Message: "card", Props: model.StringInterface{
		"tag": "t-1",
		model.PostPropsAttachments: []*model.MessageAttachment{{Title: "Request", Actions: []*model.PostAction{{
			Id: "approve", Type: model.PostActionTypeButton, Name: "Approve",
			Integration: &model.PostActionIntegration{URL: url, Context: map[string]any{"secret": "s3cret"}},
		}}}},
	}}
}

func TestPostsKeepPropsAndHideIntegrations(t *testing.T) {
	mm := mattermostfake.New(mattermostfake.Options{})
	defer mm.Close()
	ch := mm.AddChannel(mm.Team(), "access")
	ctx := context.Background()
	c := botClient(mm, mm.BotToken())
	created, _, err := c.CreatePost(ctx, buttonPost(ch, "https://gatehouse.example.com/hook"))
	if err != nil {
		t.Fatal(err)
	}
	if !model.IsValidId(created.Id) || created.CreateAt == 0 || created.UserId != mm.BotUserID() {
		t.Fatalf("created %+v", created)
	}
	if a := created.Attachments(); len(a) != 1 || a[0].Actions[0].Integration != nil {
		t.Fatalf("integration returned to the client: %+v", a)
	}
	msgs := mm.Messages(ch)
	if len(msgs) != 1 || msgs[0].Props["tag"] != "t-1" || msgs[0].Buttons[0].Context["secret"] != "s3cret" || msgs[0].Text != "card\nRequest" {
		t.Fatalf("stored %+v", msgs)
	}

	second, _, err := c.CreatePost(ctx, &model.Post{ChannelId: ch, Message: "later"})
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := c.GetPostsSince(ctx, ch, created.CreateAt, false)
	if err != nil || len(list.Order) != 1 || list.Order[0] != second.Id {
		t.Fatalf("since %d: %+v err %v", created.CreateAt, list, err)
	}

	if _, resp, err := c.CreatePost(ctx, &model.Post{ChannelId: model.NewId(), Message: "x"}); err == nil || resp.StatusCode != 403 {
		t.Fatalf("post to an unknown channel: %+v %v", resp, err)
	}
	bad := buttonPost(ch, "not a url")
	if _, resp, err := c.CreatePost(ctx, bad); err == nil || resp.StatusCode != 400 {
		t.Fatalf("invalid button accepted: %+v %v", resp, err)
	}
}

func TestFailNextRateLimitsLikeMattermost(t *testing.T) {
	mm := mattermostfake.New(mattermostfake.Options{})
	defer mm.Close()
	mm.FailNext(mattermostfake.RouteGetMe, http.StatusTooManyRequests, 1500*time.Millisecond)
	c := botClient(mm, mm.BotToken())
	_, resp, err := c.GetMe(context.Background(), "")
	if err == nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || resp.Header.Get("X-Ratelimit-Reset") != "2" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if _, _, err := c.GetMe(context.Background(), ""); err != nil {
		t.Fatalf("the failure was not one-off: %v", err)
	}
	if n := mm.Calls(mattermostfake.RouteGetMe); n != 2 {
		t.Fatalf("calls %d", n)
	}
}

func TestOpenDialogNeedsAFreshTriggerID(t *testing.T) {
	mm := mattermostfake.New(mattermostfake.Options{})
	defer mm.Close()
	c := botClient(mm, mm.BotToken())
	resp, err := c.OpenInteractiveDialog(context.Background(), model.OpenDialogRequest{
		TriggerId: "made-up", URL: "https://gatehouse.example.com/dialogs", Dialog: model.Dialog{Title: "Deny"}})
	if err == nil || resp.StatusCode != 400 || len(mm.Dialogs()) != 0 {
		t.Fatalf("made-up trigger id: %+v %v", resp, err)
	}
}

func TestResponseURLIsLimitedToFiveUses(t *testing.T) {
	mm := mattermostfake.New(mattermostfake.Options{})
	defer mm.Close()
	var responseURL string
	integration := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		responseURL = r.PostForm.Get("response_url")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"response_type":"ephemeral","text":"working"}`))
	}))
	defer integration.Close()
	alice := mm.AddUser("", "alice", "")
	if status, resp, err := mm.SlashCommand(integration.URL, alice, "ls"); err != nil || status != 200 || resp.Text != "working" {
		t.Fatalf("command: %d %+v %v", status, resp, err)
	}
	var statuses []int
	for i := range 6 {
		res, err := http.Post(responseURL, "application/json", strings.NewReader(fmt.Sprintf(`{"text":"part %d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		statuses = append(statuses, res.StatusCode)
	}
	if fmt.Sprint(statuses) != "[200 200 200 200 200 404]" {
		t.Fatalf("statuses %v", statuses)
	}
	if shown := mm.Ephemeral(alice.ID); len(shown) != 6 || shown[5].Text != "part 4" {
		t.Fatalf("ephemeral %+v", shown)
	}
}

// Example shows a button round trip: the code under test posts a card
// with a button, a user clicks it, and the integration's answer is shown.
func Example() {
	mm := mattermostfake.New(mattermostfake.Options{})
	defer mm.Close()
	bob := mm.AddUser("", "bob", "bob@example.com")
	ch := mm.AddChannel(mm.Team(), "access")

	// The integration: answers every click with an ephemeral text.
	integration := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req model.PostActionIntegrationRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		_ = json.NewEncoder(w).Encode(model.PostActionIntegrationResponse{
			EphemeralText: fmt.Sprintf("%s clicked with secret %v", req.UserName, req.Context["secret"])})
	}))
	defer integration.Close()

	// The code under test posts through the REST API.
	c := model.NewAPIv4Client(mm.URL)
	c.SetToken(mm.BotToken())
	if _, _, err := c.CreatePost(context.Background(), buttonPost(ch, integration.URL)); err != nil {
		panic(err)
	}

	card := mm.Messages(ch)[0]
	status, resp, err := mm.ClickButton(card, "Approve", bob)
	fmt.Println(status, resp.EphemeralText, err)
	fmt.Println(mm.Ephemeral(bob.ID)[0].Text)
	// Output:
	// 200 bob clicked with secret s3cret <nil>
	// bob clicked with secret s3cret
}
