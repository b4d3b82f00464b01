package h1

// HTTP/1.1 message heads and bodies, read over connections' bufio.Readers without net/http: a head is copied once into
// a buffer that its connection keeps, and its fields are slices of that
// buffer, kept in order in a slice that is reused too, so that a
// kept-alive request costs no allocation to read.
//
// The rules follow net/http's server (for requests) and client (for
// responses), which lb's FastServer used before, and are stricter where
// request smuggling or response splitting lives (RFC 9112 sections 6.3
// and 11.2). A request is refused, and its connection closed, when:
//
//   - the request line is not "METHOD SP target SP HTTP/1.x" with a token
//     as method, a target without control characters, with valid
//     %-escapes in its path, in origin form ("/..."), absolute form or
//     "*"; HTTP/1.0 and HTTP/1.1 only (505 for other versions, an HTTP/2
//     preface among them); CONNECT is refused with 405, a load balancer
//     being no forward proxy;
//   - a field line has no colon, a name that is not a token, a value with
//     control characters (a bare CR among them), or begins with white
//     space (obs-fold line folding, which net/http would join: 400);
//   - the head is longer than MaxHeadBytes (431);
//   - Host is missing in HTTP/1.1, given twice or malformed;
//   - Content-Length is not a decimal number, or given several times with
//     different values;
//   - Transfer-Encoding is given in HTTP/1.0, more than once, as anything
//     but "chunked" (501), or together with Content-Length (net/http lets
//     the chunked coding win; RFC 9112 allows a server to refuse, and a
//     proxy that refuses cannot be made to disagree with the backend);
//   - Trailer names Content-Length, Transfer-Encoding or Trailer in a
//     chunked message;
//   - Connection fields list more than 64 options (each names a field to
//     remove before passing the message on);
//   - a chunk size is empty, not hexadecimal, longer than 16 digits or on
//     a line that does not end with CRLF, a chunk's data is not followed
//     by CRLF, or the trailer section is malformed (these end the body
//     with an error, after the head was accepted).
//
// Responses from backends follow the same field rules (a malformed one is
// a 502), except that one with both Transfer-Encoding: chunked and
// Content-Length is read as chunked, as net/http does, and its connection
// is not kept.

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"net/http"
	"net/url"
)

// MaxHeadBytes bounds a request's or response's head: its start line and
// header fields with their line ends, 64 KiB (net/http's server allows
// 1 MB, nginx 4 lines of 8 KiB, HAProxy 16 KiB). A longer request head
// is answered with 431.
const MaxHeadBytes = 64 << 10

// Error is a malformed message (head or chunked body), with the
// status that answers it when it is a request.
type Error struct {
	Status int // the answer to a malformed request: 400, 405, 431, 501 or 505
	msg    string
}

func (e *Error) Error() string { return "http: " + e.msg }

// The ways a head can be malformed. They are values, so that a refused
// request costs no allocation either.
var (
	errHeadTooLarge     = &Error{http.StatusRequestHeaderFieldsTooLarge, "message head too large"}
	errRequestLine      = &Error{http.StatusBadRequest, "malformed request line"}
	errMethod           = &Error{http.StatusBadRequest, "invalid method"}
	errConnect          = &Error{http.StatusMethodNotAllowed, "CONNECT is not supported"}
	errTarget           = &Error{http.StatusBadRequest, "invalid request target"}
	errVersion          = &Error{http.StatusHTTPVersionNotSupported, "unsupported HTTP version"}
	errStatusLine       = &Error{http.StatusBadGateway, "malformed status line"}
	errFolded           = &Error{http.StatusBadRequest, "folded or indented header line"}
	errFieldLine        = &Error{http.StatusBadRequest, "malformed header line"}
	errFieldName        = &Error{http.StatusBadRequest, "invalid header field name"}
	errFieldValue       = &Error{http.StatusBadRequest, "invalid header field value"}
	errNoHost           = &Error{http.StatusBadRequest, "missing required Host header"}
	errHosts            = &Error{http.StatusBadRequest, "too many Host headers"}
	errHost             = &Error{http.StatusBadRequest, "malformed Host header"}
	errContentLength    = &Error{http.StatusBadRequest, "bad Content-Length"}
	errContentLengths   = &Error{http.StatusBadRequest, "several different Content-Length values"}
	errTEUnsupported    = &Error{http.StatusNotImplemented, "unsupported transfer encoding"}
	errTEHTTP10         = &Error{http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 message"}
	errTEAndCL          = &Error{http.StatusBadRequest, "both Transfer-Encoding and Content-Length"}
	errTrailerKey       = &Error{http.StatusBadRequest, "bad Trailer key"}
	errConnectionTokens = &Error{http.StatusBadRequest, "too many Connection options"}
	errChunkBareLF      = &Error{http.StatusBadRequest, "chunked line ends with bare LF"}
	errChunkCR          = &Error{http.StatusBadRequest, "invalid CR in chunked line"}
	errChunkLineTooLong = &Error{http.StatusBadRequest, "chunk size line too long"}
	errChunkSize        = &Error{http.StatusBadRequest, "invalid chunk size"}
	errChunkOverhead    = &Error{http.StatusBadRequest, "chunked encoding contains too much non-data"}
	errChunkEnd         = &Error{http.StatusBadRequest, "malformed chunked encoding"}
	errTrailer          = &Error{http.StatusBadRequest, "malformed trailer"}
	errTrailerTooLong   = &Error{http.StatusBadRequest, "suspiciously long trailer after chunked body"}
)

// FieldKind tells the header fields that the proxy reads or rewrites.
type FieldKind uint8

const (
	FieldOther FieldKind = iota
	FieldHost
	FieldContentLength
	FieldTransferEncoding
	FieldConnection
	FieldUpgrade
	FieldExpect
	FieldCookie
	FieldTrailer
	FieldKeepAlive
	FieldProxyConnection
	FieldTE
	FieldProxyAuthenticate
	FieldProxyAuthorization
	FieldXForwardedFor
	FieldXForwardedHost
	FieldXForwardedProto
	// FieldProxyProof is gearbox's X-Gearbox-Proxy-Proof, which a trusted
	// proxy sends to show it holds the cluster secret (lb.ProofField).
	FieldProxyProof
)

var knownFields = [...]struct {
	name string
	kind FieldKind
}{
	{"host", FieldHost},
	{"content-length", FieldContentLength},
	{"transfer-encoding", FieldTransferEncoding},
	{"connection", FieldConnection},
	{"upgrade", FieldUpgrade},
	{"expect", FieldExpect},
	{"cookie", FieldCookie},
	{"trailer", FieldTrailer},
	{"keep-alive", FieldKeepAlive},
	{"proxy-connection", FieldProxyConnection},
	{"te", FieldTE},
	{"proxy-authenticate", FieldProxyAuthenticate},
	{"proxy-authorization", FieldProxyAuthorization},
	{"x-forwarded-for", FieldXForwardedFor},
	{"x-forwarded-host", FieldXForwardedHost},
	{"x-forwarded-proto", FieldXForwardedProto},
	{"x-gearbox-proxy-proof", FieldProxyProof},
}

func kindOf(name []byte) FieldKind {
	for _, k := range knownFields {
		if len(k.name) == len(name) && EqualFold(name, k.name) {
			return k.kind
		}
	}
	return FieldOther
}

// hopByHop reports whether a field of kind k concerns one connection only
// and is not passed on (RFC 9110 section 7.6.1).
func (k FieldKind) hopByHop() bool {
	switch k {
	case FieldConnection, FieldProxyConnection, FieldKeepAlive, FieldProxyAuthenticate, FieldProxyAuthorization,
		FieldTE, FieldTrailer, FieldTransferEncoding, FieldUpgrade:
		return true
	}
	return false
}

// Field is one header field line.
type Field struct {
	Name, Value []byte // slices of the head's buffer; Value without surrounding white space
	Kind        FieldKind
	Drop        bool // not passed on
}

// Head is a parsed request or response head. Its slices point into a
// buffer of its own, which the next read reuses: a kept-alive connection
// reads its messages into one Head without allocating.
type Head struct {
	buf    []byte
	Fields []Field

	// Request line.
	Method []byte
	Target []byte
	Path   []byte   // the target's path, still escaped; nil for an absolute target
	Abs    *url.URL // the target in absolute form, else nil
	Host   []byte   // the target's host in absolute form, else the Host field

	// Status line.
	Status int
	Reason []byte // "200 OK": the status line after the version

	Minor int // HTTP/1.Minor

	ContentLength int64 // -1 when not given
	Chunked       bool
	// Close is set when the connection ends after this message: Connection
	// close, HTTP/1.0 without keep-alive, or a response whose body ends
	// with the connection.
	Close bool
	// Upgrade is set when a request asks to switch protocols, or a 101
	// response announces the switch: a non-empty Upgrade field and
	// Connection: upgrade.
	Upgrade bool
	// Body is how the message's body is delimited.
	Body BodyMode
}

// BodyMode is how a message's body is delimited.
type BodyMode uint8

// The ways a body is delimited.
const (
	BodyNone     BodyMode = iota // no body
	BodyLength                   // Content-Length bytes
	BodyChunked                  // the chunked transfer coding
	BodyUntilEOF                 // a response whose body ends with the connection
)

// readHead reads a head, up to and with its blank line, into h.buf.
// It returns io.EOF if the reader ended before the head began,
// io.ErrUnexpectedEOF if within it, and tooLarge past MaxHeadBytes.
func (h *Head) readHead(br *bufio.Reader, tooLarge error) error {
	// A large head does not keep its buffers.
	if cap(h.buf) > 16<<10 {
		h.buf = nil
	}
	if cap(h.Fields) > 256 {
		h.Fields = nil
	}
	h.buf = h.buf[:0]
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(h.buf)+len(chunk) > MaxHeadBytes {
			return tooLarge
		}
		h.buf = append(h.buf, chunk...)
		switch err {
		case nil:
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(h.buf) == 0 {
				return io.EOF
			}
			return io.ErrUnexpectedEOF
		default:
			return err
		}
		// A blank line ends the head (a blank start line too, which
		// parsing refuses).
		if line := h.buf[lineStart:]; len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return nil
		}
		lineStart = len(h.buf)
	}
}

// nextLine returns the line of b at off without its line end (LF or
// CRLF), and the offset of the next one.
func nextLine(b []byte, off int) ([]byte, int) {
	i := bytes.IndexByte(b[off:], '\n')
	if i < 0 {
		return b[off:], len(b)
	}
	line := b[off : off+i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, off + i + 1
}

// ReadRequest reads and checks a request head from br.
func (h *Head) ReadRequest(br *bufio.Reader) error {
	if err := h.readHead(br, errHeadTooLarge); err != nil {
		return err
	}
	return h.parseRequest()
}

// parseRequest parses the request head in h.buf.
func (h *Head) parseRequest() error {
	h.reset()
	line, off := nextLine(h.buf, 0)
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return errRequestLine
	}
	h.Method, line = line[:sp], line[sp+1:]
	if sp = bytes.IndexByte(line, ' '); sp < 0 {
		return errRequestLine
	}
	h.Target, line = line[:sp], line[sp+1:]
	if !isToken(h.Method) {
		return errMethod
	}
	switch string(line) {
	case "HTTP/1.1":
		h.Minor = 1
	case "HTTP/1.0":
		h.Minor = 0
	default:
		if isVersion(line) {
			return errVersion
		}
		return errRequestLine
	}
	if string(h.Method) == http.MethodConnect {
		return errConnect
	}
	if err := h.parseTarget(); err != nil {
		return err
	}
	if err := h.parseFields(off); err != nil {
		return err
	}

	hosts, fromTarget := 0, h.Host != nil
	for i := range h.Fields {
		if f := &h.Fields[i]; f.Kind == FieldHost {
			if hosts++; hosts > 1 {
				return errHosts
			}
			if !validHost(f.Value) {
				return errHost
			}
			if !fromTarget {
				h.Host = f.Value
			}
		}
	}
	if hosts == 0 && h.Minor == 1 {
		return errNoHost
	}
	if err := h.parseFraming(true); err != nil {
		return err
	}
	close, hasUpgradeToken, err := h.connectionTokens()
	if err != nil {
		return err
	}
	h.Close = close
	h.Upgrade = hasUpgradeToken && h.hasUpgradeField()
	return nil
}

// hasUpgradeField reports whether the first Upgrade field is not empty.
func (h *Head) hasUpgradeField() bool {
	for i := range h.Fields {
		if f := &h.Fields[i]; f.Kind == FieldUpgrade {
			return len(f.Value) > 0
		}
	}
	return false
}

// parseTarget checks the request target as net/url's ParseRequestURI
// would, without allocating for the usual origin form.
func (h *Head) parseTarget() error {
	t := h.Target
	if len(t) == 0 {
		return errTarget
	}
	for _, c := range t {
		if c < ' ' || c == 0x7f {
			return errTarget
		}
	}
	switch {
	case t[0] == '/':
		p := t
		if q := bytes.IndexByte(p, '?'); q >= 0 {
			p = p[:q]
		}
		for i := 0; i < len(p); i++ {
			if p[i] == '%' && (i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2])) {
				return errTarget
			}
		}
		h.Path = p
	case len(t) == 1 && t[0] == '*':
		h.Path = t
	default:
		u, err := url.ParseRequestURI(string(t))
		if err != nil {
			return errTarget
		}
		h.Abs = u
		if u.Host != "" {
			h.Host = []byte(u.Host)
		}
	}
	return nil
}

// ReadResponse reads and checks a response head from br; headRequest
// tells that it answers a HEAD request.
func (h *Head) ReadResponse(br *bufio.Reader, headRequest bool) error {
	if err := h.readHead(br, errHeadTooLarge); err != nil {
		return err
	}
	return h.parseResponse(headRequest)
}

// parseResponse parses the response head in h.buf.
func (h *Head) parseResponse(headRequest bool) error {
	h.reset()
	line, off := nextLine(h.buf, 0)
	switch {
	case bytes.HasPrefix(line, []byte("HTTP/1.1 ")):
		h.Minor = 1
	case bytes.HasPrefix(line, []byte("HTTP/1.0 ")):
		h.Minor = 0
	default:
		return errStatusLine
	}
	line = bytes.TrimLeft(line[len("HTTP/1.1 "):], " ")
	if len(line) < 3 || len(line) > 3 && line[3] != ' ' || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) || line[0] == '0' {
		return errStatusLine
	}
	for _, c := range line {
		if !validValueByte(c) {
			return errStatusLine
		}
	}
	h.Status = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	h.Reason = line
	if err := h.parseFields(off); err != nil {
		return err
	}
	bothTEAndCL := false
	if err := h.parseFraming(false); err == errTEAndCL {
		bothTEAndCL = true
	} else if err != nil {
		return err
	}
	close, hasUpgradeToken, err := h.connectionTokens()
	if err != nil {
		return err
	}
	h.Close = close
	h.Upgrade = h.Status == http.StatusSwitchingProtocols && hasUpgradeToken && h.hasUpgradeField()
	bodyless := headRequest || h.Status < 200 || h.Status == http.StatusNoContent || h.Status == http.StatusNotModified
	switch {
	case bodyless:
		h.Body = BodyNone
		if !headRequest {
			h.ContentLength = 0
		}
	case h.Chunked:
		h.Body = BodyChunked
		h.ContentLength = -1
	case h.ContentLength >= 0:
		h.Body = BodyLength
	default:
		h.Body = BodyUntilEOF
		h.Close = true
	}
	if bothTEAndCL {
		// Read as chunked, but the connection is not trusted with
		// another message.
		h.Close = true
	}
	return nil
}

func (h *Head) reset() {
	h.Fields = h.Fields[:0]
	h.Method, h.Target, h.Path, h.Abs, h.Host = nil, nil, nil, nil, nil
	h.Status, h.Reason = 0, nil
	h.ContentLength, h.Chunked, h.Close, h.Upgrade, h.Body = -1, false, false, false, BodyNone
}

// parseFields parses the field lines from off to the blank line.
func (h *Head) parseFields(off int) error {
	for {
		var line []byte
		line, off = nextLine(h.buf, off)
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errFolded
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return errFieldLine
		}
		name, value := line[:colon], line[colon+1:]
		if !isToken(name) {
			return errFieldName
		}
		for _, c := range value {
			if !validValueByte(c) {
				return errFieldValue
			}
		}
		h.Fields = append(h.Fields, Field{Name: name, Value: trimOWS(value), Kind: kindOf(name)})
	}
}

// parseFraming reads Content-Length and Transfer-Encoding (and Trailer).
// Without a body length, a request has none; a response's is settled by
// parseResponse.
func (h *Head) parseFraming(request bool) error {
	var cl, te []byte
	ncl, nte := 0, 0
	for i := range h.Fields {
		switch f := &h.Fields[i]; f.Kind {
		case FieldContentLength:
			if ncl > 0 && !bytes.Equal(cl, f.Value) {
				return errContentLengths
			}
			cl = f.Value
			ncl++
		case FieldTransferEncoding:
			te = f.Value
			nte++
		}
	}
	if ncl > 0 {
		n, ok := parseContentLength(cl)
		if !ok {
			return errContentLength
		}
		h.ContentLength = n
	}
	if nte > 0 {
		switch {
		case h.Minor == 0:
			return errTEHTTP10
		case nte > 1 || !EqualFold(te, "chunked"):
			return errTEUnsupported
		}
		h.Chunked = true
		for i := range h.Fields {
			if f := &h.Fields[i]; f.Kind == FieldTrailer && badTrailerKey(f.Value) {
				return errTrailerKey
			}
		}
		if ncl > 0 {
			return errTEAndCL
		}
	}
	if request {
		switch {
		case h.Chunked:
			h.Body = BodyChunked
		case h.ContentLength > 0:
			h.Body = BodyLength
		default:
			h.ContentLength = 0
		}
	}
	return nil
}

// badTrailerKey reports whether a Trailer field value names a field that
// must not come in a trailer.
func badTrailerKey(v []byte) bool {
	for len(v) > 0 {
		var e []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			e, v = v, nil
		}
		e = trimOWS(e)
		if EqualFold(e, "content-length") || EqualFold(e, "transfer-encoding") || EqualFold(e, "trailer") {
			return true
		}
	}
	return false
}

// maxConnectionTokens bounds the options that Connection fields list:
// each names a field to remove, and more would make that costly.
const maxConnectionTokens = 64

// connectionTokens reads the Connection fields: whether the connection
// closes after this message, and whether they name "upgrade".
func (h *Head) connectionTokens() (close, upgrade bool, err error) {
	hasClose, keepAlive, n := false, false, 0
	for i := range h.Fields {
		f := &h.Fields[i]
		if f.Kind != FieldConnection {
			continue
		}
		forEachToken(f.Value, func(t []byte) {
			n++
			switch {
			case EqualFold(t, "close"):
				hasClose = true
			case EqualFold(t, "keep-alive"):
				keepAlive = true
			case EqualFold(t, "upgrade"):
				upgrade = true
			}
		})
	}
	if n > maxConnectionTokens {
		return false, false, errConnectionTokens
	}
	if h.Minor == 0 {
		return hasClose || !keepAlive, upgrade, nil
	}
	return hasClose, upgrade, nil
}

// DropHopByHop marks the hop-by-hop fields, those that a Connection
// field names included, as not passed on.
func (h *Head) DropHopByHop() {
	for i := range h.Fields {
		f := &h.Fields[i]
		if f.Kind.hopByHop() {
			f.Drop = true
		}
		if f.Kind != FieldConnection {
			continue
		}
		forEachToken(f.Value, func(t []byte) {
			for j := range h.Fields {
				if g := &h.Fields[j]; len(g.Name) == len(t) && EqualFold(g.Name, string(t)) {
					g.Drop = true
				}
			}
		})
	}
}

// First returns the value of the first field of kind k that is passed
// on, and whether there is one.
func (h *Head) First(k FieldKind) ([]byte, bool) {
	for i := range h.Fields {
		if f := &h.Fields[i]; f.Kind == k && !f.Drop {
			return f.Value, true
		}
	}
	return nil, false
}

// forEachToken calls fn with each non-empty element of a comma-separated
// list, without its surrounding white space.
func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if t = trimOWS(t); len(t) > 0 {
			fn(t)
		}
	}
}

// parseContentLength parses a Content-Length value as net/http does:
// decimal digits only, below 2^63.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// isVersion reports whether v looks like "HTTP/x.y", a version that
// parses but is not supported.
func isVersion(v []byte) bool {
	return len(v) == len("HTTP/x.y") && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// EqualFold reports whether b and s are equal under ASCII case folding.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// trimOWS removes spaces and tabs at both ends of b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// tokenBytes and hostBytes hold the bytes allowed in a token (RFC 9110
// section 5.6.2) and, leniently as net/http, in a Host value.
var tokenBytes, hostBytes [256]bool

func init() {
	for _, c := range []byte("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		tokenBytes[c] = true
	}
	for _, c := range []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!$%&()*+,-.:;=[']_~") {
		hostBytes[c] = true
	}
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenBytes[c] {
			return false
		}
	}
	return true
}

func validHost(b []byte) bool {
	for _, c := range b {
		if !hostBytes[c] {
			return false
		}
	}
	return true
}

// validValueByte reports whether c may appear in a field value: visible
// characters, obs-text, space and tab, never a control character.
func validValueByte(c byte) bool { return c >= ' ' && c != 0x7f || c == '\t' }

// BodyReader reads a message body from a connection's reader: a length,
// chunks (checked as net/http does; a trailer is read and dropped) or
// everything up to the end of the connection.
type BodyReader struct {
	br       *bufio.Reader
	mode     BodyMode
	n        int64  // BodyLength: bytes left
	chunk    uint64 // BodyChunked: bytes left in the current chunk
	checkEnd bool   // the CRLF after a chunk's data is still to read
	excess   int64  // chunked overhead beyond what the data justifies
	err      error  // sticky; io.EOF at the end of the body
}

// Reset makes b read the body of h from br.
func (b *BodyReader) Reset(br *bufio.Reader, h *Head) {
	*b = BodyReader{br: br, mode: h.Body, n: h.ContentLength}
	if h.Body == BodyNone || h.Body == BodyLength && h.ContentLength == 0 {
		b.err = io.EOF
	}
}

// Done reports whether the body is empty or entirely read.
func (b *BodyReader) Done() bool { return b.err == io.EOF }

// Buffered returns what the connection's reader holds already of a body
// of known length, without reading the connection: nil when it holds
// nothing, or when the body is chunked or ends with the connection. Skip
// moves past it once it is used.
func (b *BodyReader) Buffered() []byte {
	n := b.br.Buffered()
	if n == 0 || b.mode != BodyLength || b.err != nil {
		return nil
	}
	p, _ := b.br.Peek(int(min(int64(n), b.n)))
	return p
}

// Skip moves past the first n bytes that Buffered returned.
func (b *BodyReader) Skip(n int) {
	b.br.Discard(n)
	if b.n -= int64(n); b.n == 0 {
		b.err = io.EOF
	}
}

// Read reads the body; it returns io.EOF at its end, and an *Error for a
// malformed chunked body.
func (b *BodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	switch b.mode {
	case BodyLength:
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err := b.br.Read(p)
		b.n -= int64(n)
		switch {
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		case err == nil && b.n == 0:
			err = io.EOF
		}
		b.err = err
		return n, err
	case BodyChunked:
		return b.readChunked(p)
	default:
		n, err := b.br.Read(p)
		b.err = err
		return n, err
	}
}

func (b *BodyReader) readChunked(p []byte) (int, error) {
	if b.checkEnd {
		if b.err = b.chunkEnd(); b.err != nil {
			return 0, b.err
		}
	}
	if b.chunk == 0 {
		if b.err = b.beginChunk(); b.err != nil {
			return 0, b.err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if uint64(len(p)) > b.chunk {
		p = p[:b.chunk]
	}
	n, err := b.br.Read(p)
	b.chunk -= uint64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	if b.chunk == 0 {
		b.checkEnd = true
		if b.br.Buffered() >= 2 {
			if b.err = b.chunkEnd(); b.err != nil {
				return n, b.err
			}
		}
	}
	return n, nil
}

// chunkEnd reads the CRLF after a chunk's data.
func (b *BodyReader) chunkEnd() error {
	p, err := b.br.Peek(2)
	if len(p) < 2 {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if p[0] != '\r' || p[1] != '\n' {
		return errChunkEnd
	}
	b.br.Discard(2)
	b.checkEnd = false
	return nil
}

// maxChunkLine bounds a chunk size line, extensions included.
const maxChunkLine = 4096

// beginChunk reads a chunk size line; after the last chunk, the trailer
// too, and then it returns io.EOF.
func (b *BodyReader) beginChunk() error {
	line, err := b.br.ReadSlice('\n')
	if err != nil {
		switch err {
		case io.EOF:
			return io.ErrUnexpectedEOF
		case bufio.ErrBufferFull:
			return errChunkLineTooLong
		}
		return err
	}
	// A chunk line ends with CRLF, and has no other CR (RFC 9112 allows
	// a bare LF in field lines, not here).
	if i := bytes.IndexByte(line, '\r'); i < 0 {
		return errChunkBareLF
	} else if i != len(line)-2 {
		return errChunkCR
	}
	line = line[:len(line)-2]
	if len(line) >= maxChunkLine {
		return errChunkLineTooLong
	}
	b.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // extensions are ignored
	}
	if len(line) == 0 || len(line) > 16 {
		return errChunkSize
	}
	var n uint64
	for _, c := range line {
		switch {
		case isDigit(c):
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return errChunkSize
		}
		n = n<<4 | uint64(c)
	}
	// Allow 16 bytes of overhead a chunk and twice its data, as
	// net/http does, so that tiny chunks with long extensions cannot
	// make the proxy work for nothing.
	b.excess = max(b.excess-16-2*int64(n), 0)
	if b.excess > 16<<10 {
		return errChunkOverhead
	}
	if n == 0 {
		if err := b.readTrailer(); err != nil {
			return err
		}
		return io.EOF
	}
	b.chunk = n
	return nil
}

// readTrailer reads and drops the trailer section after the last chunk.
// Like net/http, it must end with CRLF CRLF within the reader's buffer.
func (b *BodyReader) readTrailer() error {
	p, err := b.br.Peek(2)
	if len(p) == 2 && p[0] == '\r' && p[1] == '\n' {
		b.br.Discard(2)
		return nil
	}
	if len(p) < 2 {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	for k := 4; ; {
		k = max(k, b.br.Buffered())
		p, err := b.br.Peek(k)
		if bytes.Contains(p, []byte("\r\n\r\n")) {
			break
		}
		k = len(p) + 1
		if err != nil {
			if err == bufio.ErrBufferFull {
				return errTrailerTooLong
			}
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if p, _ := b.br.Peek(1); p[0] == ' ' || p[0] == '\t' {
		return errTrailer
	}
	for {
		line, err := b.br.ReadSlice('\n')
		if err != nil {
			return errTrailer
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			return nil
		}
		// Trailer fields are dropped: they are checked as net/http's
		// client does, a folded line being part of the one before.
		value := line
		if line[0] != ' ' && line[0] != '\t' {
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return errTrailer
			}
			for _, c := range line[:colon] {
				if !tokenBytes[c] && c != ' ' {
					return errTrailer
				}
			}
			value = line[colon+1:]
		}
		for _, c := range trimOWS(value) {
			if !validValueByte(c) {
				return errTrailer
			}
		}
	}
}
