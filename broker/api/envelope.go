package api

// Version is the version of the REST API, sent in every envelope.
const Version = "1.0"

// Message is one entry of an envelope's messages, as in OpenShift's API.
type Message struct {
	// Severity is info, warning, error or result.
	Severity string `json:"severity"`
	Text     string `json:"text"`
	// ExitCode is OpenShift's exit code for the case: 0 for success, 1
	// for most errors, 101 for "not found".
	ExitCode int `json:"exit_code"`
	// Field names the request parameter an error is about; null
	// otherwise.
	Field *string `json:"field"`
}

// Envelope is every answer's body, OpenShift's REST envelope: the status
// (ok, created, not_found, ...), messages for people, and the resource in
// Data (null on errors).
type Envelope struct {
	// Type names the resource in Data (application, domains, ...); empty,
	// and left out, on errors.
	Type     string    `json:"type,omitempty"`
	Status   string    `json:"status"`
	Messages []Message `json:"messages"`
	// Data is the resource. The broker sets it to one of this package's
	// types; a client that decodes an envelope may set it first to a
	// pointer (a *json.RawMessage, or the resource's type) for the data
	// to be decoded into.
	Data    any    `json:"data"`
	Version string `json:"version"`
}

// Link is one entry point of the API, as GET /broker/rest/api lists them.
type Link struct {
	Method string `json:"method"`
	Href   string `json:"href"`
	// Params are the parameters the call requires.
	Params []string `json:"required_params,omitempty"`
}

// Index is the data of GET /broker/rest/api: the entry points by name,
// and the apps' DNS zone.
type Index struct {
	DomainSuffix string          `json:"domain_suffix"`
	Links        map[string]Link `json:"links"`
}
