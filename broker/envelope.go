package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"gearbox/broker/api"
)

// apiError is an error that reaches the client as a status code and a
// message. exit is OpenShift's exit_code for the case.
type apiError struct {
	code  int
	exit  int
	field string
	msg   string
	// retryAfter, when above 0, is sent as Retry-After, in seconds.
	retryAfter int
}

func (e *apiError) Error() string { return e.msg }

func errorf(code, exit int, format string, args ...any) *apiError {
	return &apiError{code: code, exit: exit, msg: fmt.Sprintf(format, args...)}
}

func fieldErr(field string, exit int, format string, args ...any) *apiError {
	return &apiError{code: http.StatusUnprocessableEntity, exit: exit, field: field, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return errorf(http.StatusNotFound, 101, format, args...)
}

func forbidden(format string, args ...any) *apiError {
	return errorf(http.StatusForbidden, 1, format, args...)
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, 1, format, args...)
}

var statusNames = map[int]string{
	http.StatusOK:                    "ok",
	http.StatusCreated:               "created",
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "request_entity_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusUnprocessableEntity:   "unprocessable_entity",
	http.StatusTooManyRequests:       "too_many_requests",
	http.StatusInternalServerError:   "internal_server_error",
	http.StatusServiceUnavailable:    "service_unavailable",
}

func statusName(code int) string {
	if s, ok := statusNames[code]; ok {
		return s
	}
	return strings.ToLower(strings.ReplaceAll(http.StatusText(code), " ", "_"))
}

// reply writes a successful envelope.
func reply(w http.ResponseWriter, code int, typ string, data any, msgs ...string) {
	env := api.Envelope{Type: typ, Status: statusName(code), Data: data, Version: api.Version, Messages: []api.Message{}}
	for _, m := range msgs {
		env.Messages = append(env.Messages, api.Message{Severity: "info", Text: m})
	}
	writeEnvelope(w, code, env)
}

// fail writes err as an error envelope. Errors that are not apiErrors are
// internal: the client gets a generic sentence, the log gets the detail.
func (b *Broker) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		b.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
		ae = errorf(http.StatusInternalServerError, 1, "An internal error occurred; the broker log has the details.")
	}
	msg := api.Message{Severity: "error", Text: ae.msg, ExitCode: ae.exit}
	if ae.field != "" {
		f := ae.field
		msg.Field = &f
	}
	// Not to the console's script, whose browser would put up its own
	// password dialog over the page (console.go).
	if ae.code == http.StatusUnauthorized && r.Header.Get(consoleHeader) == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="gearbox"`)
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	writeEnvelope(w, ae.code, api.Envelope{Status: statusName(ae.code), Messages: []api.Message{msg}, Version: api.Version})
}

func writeEnvelope(w http.ResponseWriter, code int, env api.Envelope) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(env)
}

// params reads a request's parameters: the query string, then a
// form-encoded or JSON object body. JSON values that are not strings are
// kept in their JSON text (true, 3).
type params map[string]string

func readParams(r *http.Request, limit int64) (params, error) {
	p := params{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 {
			p[k] = v[len(v)-1]
		}
	}
	if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return p, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, bodyError("request body", err)
	}
	if int64(len(body)) > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, 1, "The request body is larger than %d bytes.", limit)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return p, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, badRequest("Malformed JSON body: %v", err)
		}
		for k, raw := range obj {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				p[k] = s
				continue
			}
			var list []string
			if json.Unmarshal(raw, &list) == nil {
				p[k] = strings.Join(list, ",")
				continue
			}
			if string(raw) == "null" {
				continue
			}
			p[k] = string(raw)
		}
	case "", "application/x-www-form-urlencoded":
		form, err := parseQuery(string(body))
		if err != nil {
			return nil, badRequest("Malformed form body: %v", err)
		}
		for k, v := range form {
			p[k] = v
		}
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, 1, "Unsupported content type %q: send application/x-www-form-urlencoded or application/json.", ct)
	}
	return p, nil
}

func (p params) str(name string) string { return strings.TrimSpace(p[name]) }

// boolean reads a true/false parameter; absent gives def.
func (p params) boolean(name string, def bool) (bool, error) {
	v := p.str(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fieldErr(name, 1, "Invalid value for %s: %q; use true or false.", name, v)
	}
	return b, nil
}

// integer reads a whole-number parameter; ok is false when absent.
func (p params) integer(name string) (n int, ok bool, err error) {
	v := p.str(name)
	if v == "" {
		return 0, false, nil
	}
	n, err = strconv.Atoi(v)
	if err != nil {
		return 0, false, fieldErr(name, 1, "Invalid value for %s: %q; use a whole number.", name, v)
	}
	return n, true, nil
}

// parseQuery parses a form body, keeping the last value of each key.
func parseQuery(s string) (map[string]string, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(v))
	for k, vs := range v {
		if len(vs) > 0 {
			out[k] = vs[len(vs)-1]
		}
	}
	return out, nil
}
