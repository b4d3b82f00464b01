package lb

// FastServer's HTTP/1.1 message heads and bodies, read over the
// connections' bufio.Readers without net/http: a head is copied once into
// a buffer that its connection keeps, and its fields are slices of that
// buffer, kept in order in a slice that is reused too, so that a
// kept-alive request costs no allocation to read.
//
// The rules follow net/http's server (for requests) and client (for
// responses), which FastServer used before, and are stricter where
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
//   - the head is longer than maxHeadBytes (431);
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

// maxHeadBytes bounds a request's or response's head: its start line and
// header fields with their line ends, 64 KiB (net/http's server allows
// 1 MB, nginx 4 lines of 8 KiB, HAProxy 16 KiB). A longer request head
// is answered with 431.
const maxHeadBytes = 64 << 10

// protoError is a malformed message (head or chunked body), with the
// status that answers it when it is a request.
type protoError struct {
	code int
	msg  string
}

func (e *protoError) Error() string { return "http: " + e.msg }

// The ways a head can be malformed. They are values, so that a refused
// request costs no allocation either.
var (
	errHeadTooLarge     = &protoError{http.StatusRequestHeaderFieldsTooLarge, "message head too large"}
	errRequestLine      = &protoError{http.StatusBadRequest, "malformed request line"}
	errMethod           = &protoError{http.StatusBadRequest, "invalid method"}
	errConnect          = &protoError{http.StatusMethodNotAllowed, "CONNECT is not supported"}
	errTarget           = &protoError{http.StatusBadRequest, "invalid request target"}
	errVersion          = &protoError{http.StatusHTTPVersionNotSupported, "unsupported HTTP version"}
	errStatusLine       = &protoError{http.StatusBadGateway, "malformed status line"}
	errFolded           = &protoError{http.StatusBadRequest, "folded or indented header line"}
	errFieldLine        = &protoError{http.StatusBadRequest, "malformed header line"}
	errFieldName        = &protoError{http.StatusBadRequest, "invalid header field name"}
	errFieldValue       = &protoError{http.StatusBadRequest, "invalid header field value"}
	errNoHost           = &protoError{http.StatusBadRequest, "missing required Host header"}
	errHosts            = &protoError{http.StatusBadRequest, "too many Host headers"}
	errHost             = &protoError{http.StatusBadRequest, "malformed Host header"}
	errContentLength    = &protoError{http.StatusBadRequest, "bad Content-Length"}
	errContentLengths   = &protoError{http.StatusBadRequest, "several different Content-Length values"}
	errTEUnsupported    = &protoError{http.StatusNotImplemented, "unsupported transfer encoding"}
	errTEHTTP10         = &protoError{http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 message"}
	errTEAndCL          = &protoError{http.StatusBadRequest, "both Transfer-Encoding and Content-Length"}
	errTrailerKey       = &protoError{http.StatusBadRequest, "bad Trailer key"}
	errConnectionTokens = &protoError{http.StatusBadRequest, "too many Connection options"}
	errChunkBareLF      = &protoError{http.StatusBadRequest, "chunked line ends with bare LF"}
	errChunkCR          = &protoError{http.StatusBadRequest, "invalid CR in chunked line"}
	errChunkLineTooLong = &protoError{http.StatusBadRequest, "chunk size line too long"}
	errChunkSize        = &protoError{http.StatusBadRequest, "invalid chunk size"}
	errChunkOverhead    = &protoError{http.StatusBadRequest, "chunked encoding contains too much non-data"}
	errChunkEnd         = &protoError{http.StatusBadRequest, "malformed chunked encoding"}
	errTrailer          = &protoError{http.StatusBadRequest, "malformed trailer"}
	errTrailerTooLong   = &protoError{http.StatusBadRequest, "suspiciously long trailer after chunked body"}
)

// fieldKind tells the header fields that the proxy reads or rewrites.
type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldHost
	fieldContentLength
	fieldTransferEncoding
	fieldConnection
	fieldUpgrade
	fieldExpect
	fieldCookie
	fieldTrailer
	fieldKeepAlive
	fieldProxyConnection
	fieldTE
	fieldProxyAuthenticate
	fieldProxyAuthorization
	fieldXForwardedFor
	fieldXForwardedHost
	fieldXForwardedProto
)

var knownFields = [...]struct {
	name string
	kind fieldKind
}{
	{"host", fieldHost},
	{"content-length", fieldContentLength},
	{"transfer-encoding", fieldTransferEncoding},
	{"connection", fieldConnection},
	{"upgrade", fieldUpgrade},
	{"expect", fieldExpect},
	{"cookie", fieldCookie},
	{"trailer", fieldTrailer},
	{"keep-alive", fieldKeepAlive},
	{"proxy-connection", fieldProxyConnection},
	{"te", fieldTE},
	{"proxy-authenticate", fieldProxyAuthenticate},
	{"proxy-authorization", fieldProxyAuthorization},
	{"x-forwarded-for", fieldXForwardedFor},
	{"x-forwarded-host", fieldXForwardedHost},
	{"x-forwarded-proto", fieldXForwardedProto},
}

func kindOf(name []byte) fieldKind {
	for _, k := range knownFields {
		if len(k.name) == len(name) && equalFold(name, k.name) {
			return k.kind
		}
	}
	return fieldOther
}

// hopByHop reports whether a field of kind k concerns one connection only
// and is not passed on (RFC 9110 section 7.6.1).
func (k fieldKind) hopByHop() bool {
	switch k {
	case fieldConnection, fieldProxyConnection, fieldKeepAlive, fieldProxyAuthenticate, fieldProxyAuthorization,
		fieldTE, fieldTrailer, fieldTransferEncoding, fieldUpgrade:
		return true
	}
	return false
}

// field is one header field line.
type field struct {
	name, value []byte // slices of head.buf; value without surrounding white space
	kind        fieldKind
	drop        bool // not passed on
}

// head is a parsed request or response head. Its slices point into buf,
// which the next read reuses.
type head struct {
	buf    []byte
	fields []field

	// Request line.
	method []byte
	target []byte
	path   []byte // the target's path, still escaped; nil for an absolute target
	abs    *url.URL
	host   []byte // the target's host in absolute form, else the Host field

	// Status line.
	status int
	reason []byte // "200 OK": the status line after the version

	minor int // HTTP/1.minor

	contentLength int64 // -1 when not given
	chunked       bool
	// close is set when the connection ends after this message: Connection
	// close, HTTP/1.0 without keep-alive, or a response whose body ends
	// with the connection.
	close bool
	// upgrade is set when a request asks to switch protocols (Upgrade and
	// Connection: upgrade).
	upgrade bool
	// body is how the message's body is delimited.
	body bodyMode
}

// bodyMode is how a message's body is delimited.
type bodyMode uint8

const (
	bodyNone bodyMode = iota
	bodyLength
	bodyChunked
	bodyUntilEOF // a response whose body ends with the connection
)

// readHead reads a head, up to and with its blank line, into h.buf.
// It returns io.EOF if the reader ended before the head began,
// io.ErrUnexpectedEOF if within it, and tooLarge past maxHeadBytes.
func (h *head) readHead(br *bufio.Reader, tooLarge error) error {
	// A large head does not keep its buffers.
	if cap(h.buf) > 16<<10 {
		h.buf = nil
	}
	if cap(h.fields) > 256 {
		h.fields = nil
	}
	h.buf = h.buf[:0]
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(h.buf)+len(chunk) > maxHeadBytes {
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

// readRequest reads and checks a request head from br.
func (h *head) readRequest(br *bufio.Reader) error {
	if err := h.readHead(br, errHeadTooLarge); err != nil {
		return err
	}
	return h.parseRequest()
}

// parseRequest parses the request head in h.buf.
func (h *head) parseRequest() error {
	h.reset()
	line, off := nextLine(h.buf, 0)
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return errRequestLine
	}
	h.method, line = line[:sp], line[sp+1:]
	if sp = bytes.IndexByte(line, ' '); sp < 0 {
		return errRequestLine
	}
	h.target, line = line[:sp], line[sp+1:]
	if !isToken(h.method) {
		return errMethod
	}
	switch string(line) {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		if isVersion(line) {
			return errVersion
		}
		return errRequestLine
	}
	if string(h.method) == http.MethodConnect {
		return errConnect
	}
	if err := h.parseTarget(); err != nil {
		return err
	}
	if err := h.parseFields(off); err != nil {
		return err
	}

	hosts, fromTarget := 0, h.host != nil
	for i := range h.fields {
		if f := &h.fields[i]; f.kind == fieldHost {
			if hosts++; hosts > 1 {
				return errHosts
			}
			if !validHost(f.value) {
				return errHost
			}
			if !fromTarget {
				h.host = f.value
			}
		}
	}
	if hosts == 0 && h.minor == 1 {
		return errNoHost
	}
	if err := h.parseFraming(true); err != nil {
		return err
	}
	close, hasUpgradeToken, err := h.connectionTokens()
	if err != nil {
		return err
	}
	h.close = close
	upgrade := false
	for i := range h.fields {
		if f := &h.fields[i]; f.kind == fieldUpgrade {
			upgrade = len(f.value) > 0
			break
		}
	}
	h.upgrade = upgrade && hasUpgradeToken
	return nil
}

// parseTarget checks the request target as net/url's ParseRequestURI
// would, without allocating for the usual origin form.
func (h *head) parseTarget() error {
	t := h.target
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
		h.path = p
	case len(t) == 1 && t[0] == '*':
		h.path = t
	default:
		u, err := url.ParseRequestURI(string(t))
		if err != nil {
			return errTarget
		}
		h.abs = u
		if u.Host != "" {
			h.host = []byte(u.Host)
		}
	}
	return nil
}

// readResponse reads and checks a response head from br; headRequest
// tells that it answers a HEAD request.
func (h *head) readResponse(br *bufio.Reader, headRequest bool) error {
	if err := h.readHead(br, errHeadTooLarge); err != nil {
		return err
	}
	return h.parseResponse(headRequest)
}

// parseResponse parses the response head in h.buf.
func (h *head) parseResponse(headRequest bool) error {
	h.reset()
	line, off := nextLine(h.buf, 0)
	switch {
	case bytes.HasPrefix(line, []byte("HTTP/1.1 ")):
		h.minor = 1
	case bytes.HasPrefix(line, []byte("HTTP/1.0 ")):
		h.minor = 0
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
	h.status = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	h.reason = line
	if err := h.parseFields(off); err != nil {
		return err
	}
	bothTEAndCL := false
	if err := h.parseFraming(false); err == errTEAndCL {
		bothTEAndCL = true
	} else if err != nil {
		return err
	}
	close, _, err := h.connectionTokens()
	if err != nil {
		return err
	}
	h.close = close
	bodyless := headRequest || h.status < 200 || h.status == http.StatusNoContent || h.status == http.StatusNotModified
	switch {
	case bodyless:
		h.body = bodyNone
		if !headRequest {
			h.contentLength = 0
		}
	case h.chunked:
		h.body = bodyChunked
		h.contentLength = -1
	case h.contentLength >= 0:
		h.body = bodyLength
	default:
		h.body = bodyUntilEOF
		h.close = true
	}
	if bothTEAndCL {
		// Read as chunked, but the connection is not trusted with
		// another message.
		h.close = true
	}
	return nil
}

func (h *head) reset() {
	h.fields = h.fields[:0]
	h.method, h.target, h.path, h.abs, h.host = nil, nil, nil, nil, nil
	h.status, h.reason = 0, nil
	h.contentLength, h.chunked, h.close, h.upgrade, h.body = -1, false, false, false, bodyNone
}

// parseFields parses the field lines from off to the blank line.
func (h *head) parseFields(off int) error {
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
		h.fields = append(h.fields, field{name: name, value: trimOWS(value), kind: kindOf(name)})
	}
}

// parseFraming reads Content-Length and Transfer-Encoding (and Trailer).
// Without a body length, a request has none; a response's is settled by
// parseResponse.
func (h *head) parseFraming(request bool) error {
	var cl, te []byte
	ncl, nte := 0, 0
	for i := range h.fields {
		switch f := &h.fields[i]; f.kind {
		case fieldContentLength:
			if ncl > 0 && !bytes.Equal(cl, f.value) {
				return errContentLengths
			}
			cl = f.value
			ncl++
		case fieldTransferEncoding:
			te = f.value
			nte++
		}
	}
	if ncl > 0 {
		n, ok := parseContentLength(cl)
		if !ok {
			return errContentLength
		}
		h.contentLength = n
	}
	if nte > 0 {
		switch {
		case h.minor == 0:
			return errTEHTTP10
		case nte > 1 || !equalFold(te, "chunked"):
			return errTEUnsupported
		}
		h.chunked = true
		for i := range h.fields {
			if f := &h.fields[i]; f.kind == fieldTrailer && badTrailerKey(f.value) {
				return errTrailerKey
			}
		}
		if ncl > 0 {
			return errTEAndCL
		}
	}
	if request {
		switch {
		case h.chunked:
			h.body = bodyChunked
		case h.contentLength > 0:
			h.body = bodyLength
		default:
			h.contentLength = 0
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
		if equalFold(e, "content-length") || equalFold(e, "transfer-encoding") || equalFold(e, "trailer") {
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
func (h *head) connectionTokens() (close, upgrade bool, err error) {
	hasClose, keepAlive, n := false, false, 0
	for i := range h.fields {
		f := &h.fields[i]
		if f.kind != fieldConnection {
			continue
		}
		forEachToken(f.value, func(t []byte) {
			n++
			switch {
			case equalFold(t, "close"):
				hasClose = true
			case equalFold(t, "keep-alive"):
				keepAlive = true
			case equalFold(t, "upgrade"):
				upgrade = true
			}
		})
	}
	if n > maxConnectionTokens {
		return false, false, errConnectionTokens
	}
	if h.minor == 0 {
		return hasClose || !keepAlive, upgrade, nil
	}
	return hasClose, upgrade, nil
}

// dropHopByHop marks the hop-by-hop fields, those that a Connection
// field names included, as not passed on.
func (h *head) dropHopByHop() {
	for i := range h.fields {
		f := &h.fields[i]
		if f.kind.hopByHop() {
			f.drop = true
		}
		if f.kind != fieldConnection {
			continue
		}
		forEachToken(f.value, func(t []byte) {
			for j := range h.fields {
				if g := &h.fields[j]; len(g.name) == len(t) && equalFold(g.name, string(t)) {
					g.drop = true
				}
			}
		})
	}
}

// first returns the value of the first field of kind k that is passed
// on, and whether there is one.
func (h *head) first(k fieldKind) ([]byte, bool) {
	for i := range h.fields {
		if f := &h.fields[i]; f.kind == k && !f.drop {
			return f.value, true
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

// equalFold reports whether b and s are equal under ASCII case folding.
func equalFold(b []byte, s string) bool {
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

// bodyReader reads a message body from a connection's reader: a length,
// chunks (checked as net/http does; a trailer is read and dropped) or
// everything up to the end of the connection.
type bodyReader struct {
	br       *bufio.Reader
	mode     bodyMode
	n        int64  // bodyLength: bytes left
	chunk    uint64 // bodyChunked: bytes left in the current chunk
	checkEnd bool   // the CRLF after a chunk's data is still to read
	excess   int64  // chunked overhead beyond what the data justifies
	err      error  // sticky; io.EOF at the end of the body
}

// reset makes b read the body of h from br.
func (b *bodyReader) reset(br *bufio.Reader, h *head) {
	*b = bodyReader{br: br, mode: h.body, n: h.contentLength}
	if h.body == bodyNone || h.body == bodyLength && h.contentLength == 0 {
		b.err = io.EOF
	}
}

// done reports whether the body is empty or entirely read.
func (b *bodyReader) done() bool { return b.err == io.EOF }

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	switch b.mode {
	case bodyLength:
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
	case bodyChunked:
		return b.readChunked(p)
	default:
		n, err := b.br.Read(p)
		b.err = err
		return n, err
	}
}

func (b *bodyReader) readChunked(p []byte) (int, error) {
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
func (b *bodyReader) chunkEnd() error {
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
func (b *bodyReader) beginChunk() error {
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
func (b *bodyReader) readTrailer() error {
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
