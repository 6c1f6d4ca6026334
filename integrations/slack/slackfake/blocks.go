package slackfake

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"
)

// Slack's Block Kit limits (https://docs.slack.dev/reference/block-kit/).
const (
	maxMessageBlocks = 50
	maxModalBlocks   = 100
	maxMessageText   = 40000
	maxSectionText   = 3000
	maxFields        = 10
	maxFieldText     = 2000
	maxHeaderText    = 150
	maxContextElems  = 10
	maxActionElems   = 25
	maxButtonText    = 75
	maxButtonValue   = 2000
	maxID            = 255 // block_id, action_id, callback_id
	maxLabelText     = 2000
	maxModalTitle    = 24
	maxPrivateMeta   = 3000
)

// parsedBlocks is a decoded and checked blocks array.
type parsedBlocks struct {
	raw      json.RawMessage
	rendered string
	buttons  []slackgo.ButtonBlockElement
	inputs   map[string]string // block_id -> action_id
}

func (p parsedBlocks) actionIDs() []string {
	var ids []string
	for _, b := range p.buttons {
		ids = append(ids, b.ActionID)
	}
	return ids
}

func chars(s string) int { return utf8.RuneCountInString(s) }

// parseBlocks decodes a blocks JSON array with slack-go's types, checks it
// against Slack's limits and renders its text. An error is Slack's
// invalid_blocks.
func parseBlocks(raw string, maxBlocks int) (parsedBlocks, error) {
	p := parsedBlocks{inputs: map[string]string{}}
	if strings.TrimSpace(raw) == "" {
		return p, nil
	}
	var blocks slackgo.Blocks
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return p, fmt.Errorf("blocks are not a Block Kit array: %v", err)
	}
	if n := len(blocks.BlockSet); n > maxBlocks {
		return p, fmt.Errorf("%d blocks, at most %d", n, maxBlocks)
	}
	p.raw = json.RawMessage(raw)
	var lines []string
	text := func(what string, t *slackgo.TextBlockObject, limit int) error {
		if t == nil {
			return nil
		}
		if t.Type != slackgo.PlainTextType && t.Type != slackgo.MarkdownType {
			return fmt.Errorf("%s: text type %q", what, t.Type)
		}
		if chars(t.Text) > limit {
			return fmt.Errorf("%s: %d characters, at most %d", what, chars(t.Text), limit)
		}
		lines = append(lines, t.Text)
		return nil
	}
	blockIDs := map[string]bool{}
	for i, b := range blocks.BlockSet {
		if id := b.ID(); id != "" {
			if chars(id) > maxID {
				return p, fmt.Errorf("block %d: block_id longer than %d", i, maxID)
			}
			if blockIDs[id] {
				return p, fmt.Errorf("block %d: duplicate block_id %q", i, id)
			}
			blockIDs[id] = true
		}
		what := fmt.Sprintf("block %d (%s)", i, b.BlockType())
		switch b := b.(type) {
		case *slackgo.HeaderBlock:
			if b.Text == nil || b.Text.Type != slackgo.PlainTextType {
				return p, fmt.Errorf("%s: header text must be plain_text", what)
			}
			if err := text(what, b.Text, maxHeaderText); err != nil {
				return p, err
			}
		case *slackgo.SectionBlock:
			if b.Text == nil && len(b.Fields) == 0 {
				return p, fmt.Errorf("%s: section without text or fields", what)
			}
			if err := text(what, b.Text, maxSectionText); err != nil {
				return p, err
			}
			if len(b.Fields) > maxFields {
				return p, fmt.Errorf("%s: %d fields, at most %d", what, len(b.Fields), maxFields)
			}
			for _, f := range b.Fields {
				if err := text(what+" field", f, maxFieldText); err != nil {
					return p, err
				}
			}
		case *slackgo.ContextBlock:
			els := b.ContextElements.Elements
			if len(els) == 0 || len(els) > maxContextElems {
				return p, fmt.Errorf("%s: %d elements, 1 to %d", what, len(els), maxContextElems)
			}
			for _, e := range els {
				if t, ok := e.(*slackgo.TextBlockObject); ok {
					if err := text(what, t, maxSectionText); err != nil {
						return p, err
					}
				}
			}
		case *slackgo.ActionBlock:
			if b.Elements == nil || len(b.Elements.ElementSet) == 0 || len(b.Elements.ElementSet) > maxActionElems {
				return p, fmt.Errorf("%s: 1 to %d elements", what, maxActionElems)
			}
			var labels []string
			for _, e := range b.Elements.ElementSet {
				btn, ok := e.(*slackgo.ButtonBlockElement)
				if !ok {
					continue
				}
				if btn.Text == nil || btn.Text.Type != slackgo.PlainTextType || chars(btn.Text.Text) > maxButtonText {
					return p, fmt.Errorf("%s: button text must be plain_text of at most %d characters", what, maxButtonText)
				}
				if chars(btn.Value) > maxButtonValue || chars(btn.ActionID) > maxID {
					return p, fmt.Errorf("%s: button value or action_id too long", what)
				}
				if btn.Style != "" && btn.Style != slackgo.StylePrimary && btn.Style != slackgo.StyleDanger {
					return p, fmt.Errorf("%s: button style %q", what, btn.Style)
				}
				p.buttons = append(p.buttons, *btn)
				labels = append(labels, "["+btn.Text.Text+"]")
			}
			lines = append(lines, strings.Join(labels, " "))
		case *slackgo.InputBlock:
			if b.Label == nil || b.Label.Type != slackgo.PlainTextType {
				return p, fmt.Errorf("%s: input label must be plain_text", what)
			}
			if err := text(what, b.Label, maxLabelText); err != nil {
				return p, err
			}
			if in, ok := b.Element.(*slackgo.PlainTextInputBlockElement); ok {
				p.inputs[b.BlockID] = in.ActionID
			}
		case *slackgo.DividerBlock:
		case *slackgo.MarkdownBlock:
			lines = append(lines, b.Text)
		}
	}
	p.rendered = strings.Join(lines, "\n")
	return p, nil
}
