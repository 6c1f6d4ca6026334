// Package manifest reads the YAML documents `accessctl create -f` takes:
// roles, users and resources in the Teleport-shaped envelope, several per
// file. Decoding is strict: an unknown field is an error naming it.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/access"
)

// Object is one decoded document: exactly one of Role, User, Resource.
type Object struct {
	Kind     string
	Name     string
	Role     *access.Role
	User     *access.User
	Resource *access.Resource
	// JSON is the document as JSON, what the API takes.
	JSON json.RawMessage
}

// Decode reads every YAML document of data. Errors name the document
// (1-based) and the field.
func Decode(data []byte) ([]Object, error) {
	var out []Object
	for i, doc := range splitDocuments(data) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: document %d: %v", access.ErrInvalid, i+1, err)
		}
		obj, err := DecodeJSON(js)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no documents found", access.ErrInvalid)
	}
	return out, nil
}

// DecodeJSON decodes one object strictly by its kind.
func DecodeJSON(js []byte) (Object, error) {
	var head struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return Object{}, fmt.Errorf("%w: %v", access.ErrInvalid, err)
	}
	obj := Object{Kind: head.Kind, JSON: js}
	var err error
	switch head.Kind {
	case access.KindRole:
		obj.Role = &access.Role{}
		err = strict(js, obj.Role)
		obj.Name = obj.Role.Metadata.Name
	case access.KindUser:
		obj.User = &access.User{}
		err = strict(js, obj.User)
		obj.Name = obj.User.Metadata.Name
	case access.KindNode, access.KindDB, access.KindApp, access.KindKubeCluster, access.KindWindowsDesktop:
		obj.Resource = &access.Resource{}
		err = strict(js, obj.Resource)
		obj.Name = obj.Resource.Metadata.Name
	case "":
		return Object{}, fmt.Errorf("%w: kind is missing", access.ErrInvalid)
	default:
		return Object{}, fmt.Errorf("%w: kind %q: want role, user, node, db, app, kube_cluster or windows_desktop", access.ErrInvalid, head.Kind)
	}
	if err != nil {
		return Object{}, err
	}
	return obj, nil
}

func strict(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%w: field %s: want %s, got %s", access.ErrInvalid, te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("%w: %s", access.ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// splitDocuments splits on lines that are exactly "---".
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if string(bytes.TrimRight(line, " \t\r\n")) == "---" {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, cur.Bytes())
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
