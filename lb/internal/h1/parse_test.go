package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	type want struct {
		method, target, host string
		length               int64
		chunked, close       bool
		upgrade              bool
		fields               int
	}
	tests := []struct {
		name string
		in   string
		want want
	}{
		{"keep-alive GET", "GET /a?b HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n\r\n",
			want{method: "GET", target: "/a?b", host: "app", fields: 2}},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: app\n\n",
			want{method: "GET", target: "/", host: "app", fields: 1}},
		{"value white space trimmed", "GET / HTTP/1.1\r\nHost: \t app \t\r\n\r\n",
			want{method: "GET", target: "/", host: "app", fields: 1}},
		{"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n",
			want{method: "GET", target: "/", close: true}},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			want{method: "GET", target: "/", fields: 1}},
		{"close among tokens", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n",
			want{method: "GET", target: "/", host: "a", close: true, fields: 2}},
		{"absolute form takes its host", "GET http://b.example:8080/x HTTP/1.1\r\nHost: a\r\n\r\n",
			want{method: "GET", target: "http://b.example:8080/x", host: "b.example:8080", fields: 1}},
		{"asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
			want{method: "OPTIONS", target: "*", host: "a", fields: 1}},
		{"length", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n",
			want{method: "POST", target: "/p", host: "a", length: 12, fields: 2}},
		{"same length twice", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
			want{method: "POST", target: "/p", host: "a", length: 3, fields: 3}},
		{"chunked", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
			want{method: "POST", target: "/p", host: "a", length: -1, chunked: true, fields: 2}},
		{"upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
			want{method: "GET", target: "/ws", host: "a", upgrade: true, fields: 3}},
		{"upgrade without Connection", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
			want{method: "GET", target: "/ws", host: "a", fields: 2}},
		{"long field across the reader's buffer", "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + strings.Repeat("c", 9000) + "\r\n\r\n",
			want{method: "GET", target: "/", host: "a", fields: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Head
			if err := h.ReadRequest(bufio.NewReaderSize(strings.NewReader(tt.in), 4096)); err != nil {
				t.Fatal(err)
			}
			got := want{string(h.Method), string(h.Target), string(h.Host), h.ContentLength, h.Chunked, h.Close, h.Upgrade, len(h.Fields)}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRequestRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"no version", "GET /\r\n\r\n", errRequestLine},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", errRequestLine},
		{"blank request line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", errRequestLine},
		{"method not a token", "GE{T / HTTP/1.1\r\nHost: a\r\n\r\n", errMethod},
		{"lower-case protocol", "GET / http/1.1\r\nHost: a\r\n\r\n", errRequestLine},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", errVersion},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", errVersion},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", errVersion},
		{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", errConnect},
		{"control character in target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", errTarget},
		{"bad escape in path", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", errTarget},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", errTarget},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", errFolded},
		{"indented first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", errFolded},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", errFieldLine},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", errFieldName},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", errFieldName},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n", errFieldValue},
		{"CR before CRLF", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\r\n\r\n", errFieldValue},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\x002\r\n\r\n", errFieldValue},
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", errNoHost},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", errHosts},
		{"malformed Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", errHost},
		{"Content-Length not a number", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n", errContentLength},
		{"Content-Length with sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", errContentLength},
		{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", errContentLength},
		{"Content-Length empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", errContentLength},
		{"Content-Length too large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", errContentLength},
		{"different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", errContentLengths},
		{"Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", errTEAndCL},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", errTEUnsupported},
		{"two codings", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", errTEUnsupported},
		{"two Transfer-Encoding fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", errTEUnsupported},
		{"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", errTEHTTP10},
		{"Trailer names Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n", errTrailerKey},
		{"too many Connection options", "GET / HTTP/1.1\r\nHost: a\r\nConnection: " + strings.Repeat("x, ", 65) + "\r\n\r\n", errConnectionTokens},
		{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", MaxHeadBytes) + "\r\n\r\n", errHeadTooLarge},
		{"ends within the head", "GET / HTTP/1.1\r\nHost: a\r\n", io.ErrUnexpectedEOF},
		{"nothing", "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Head
			err := h.ReadRequest(bufio.NewReaderSize(strings.NewReader(tt.in), 4096))
			if err != tt.err {
				t.Errorf("error %v, want %v", err, tt.err)
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	type want struct {
		status int
		reason string
		length int64
		body   BodyMode
		close  bool
	}
	tests := []struct {
		name string
		in   string
		head bool
		want want
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, want{200, "200 OK", 5, BodyLength, false}},
		{"no reason", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", false, want{404, "404", 0, BodyLength, false}},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, want{200, "200 OK", -1, BodyChunked, false}},
		{"chunked wins over length, connection not kept", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n", false, want{200, "200 OK", -1, BodyChunked, true}},
		{"until the end", "HTTP/1.1 200 OK\r\n\r\n", false, want{200, "200 OK", -1, BodyUntilEOF, true}},
		{"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, want{200, "200 OK", 1, BodyLength, true}},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false, want{200, "200 OK", 1, BodyLength, false}},
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false, want{200, "200 OK", 1, BodyLength, true}},
		{"HEAD keeps the length", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, want{200, "200 OK", 1000, BodyNone, false}},
		{"HEAD without length", "HTTP/1.1 200 OK\r\n\r\n", true, want{200, "200 OK", -1, BodyNone, false}},
		{"204", "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", false, want{204, "204 No Content", 0, BodyNone, false}},
		{"304", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, want{304, "304 Not Modified", 0, BodyNone, false}},
		{"103", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, want{103, "103 Early Hints", 0, BodyNone, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Head
			if err := h.ReadResponse(bufio.NewReaderSize(strings.NewReader(tt.in), 4096), tt.head); err != nil {
				t.Fatal(err)
			}
			got := want{h.Status, string(h.Reason), h.ContentLength, h.Body, h.Close}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseResponseRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"HTTP/2", "HTTP/2.0 200 OK\r\n\r\n", errStatusLine},
		{"short code", "HTTP/1.1 20 OK\r\n\r\n", errStatusLine},
		{"long code", "HTTP/1.1 2000 OK\r\n\r\n", errStatusLine},
		{"code below 100", "HTTP/1.1 099 OK\r\n\r\n", errStatusLine},
		{"CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n", errStatusLine},
		{"folded field", "HTTP/1.1 200 OK\r\nX: 1\r\n\t2\r\n\r\n", errFolded},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n", errFieldName},
		{"different lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", errContentLengths},
		{"gzip only", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", errTEUnsupported},
		{"chunked in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", errTEHTTP10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Head
			if err := h.ReadResponse(bufio.NewReaderSize(strings.NewReader(tt.in), 4096), false); err != tt.err {
				t.Errorf("error %v, want %v", err, tt.err)
			}
		})
	}
}

// TestChunkedBody reads chunked bodies, and what follows them on the
// connection.
func TestChunkedBody(t *testing.T) {
	tests := []struct {
		name string
		in   string
		body string
		err  error  // nil: the body is read whole
		rest string // what is left for the next message
	}{
		{"chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", "hello world", nil, "NEXT"},
		{"hex sizes", "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", nil, ""},
		{"extensions and trailing space", "5;a=b \t\r\nhello\r\n0;last\r\n\r\n", "hello", nil, ""},
		{"trailer dropped", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\nNEXT", "hello", nil, "NEXT"},
		{"empty size", "\r\nhello\r\n0\r\n\r\n", "", errChunkSize, ""},
		{"negative size", "-5\r\nhello\r\n0\r\n\r\n", "", errChunkSize, ""},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "", errChunkSize, ""},
		{"space before extension", "5 ;a\r\nhello\r\n0\r\n\r\n", "", errChunkSize, ""},
		{"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", "", errChunkSize, ""},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", "", errChunkBareLF, ""},
		{"CR within size line", "5\r;\r\nhello\r\n0\r\n\r\n", "", errChunkCR, ""},
		{"data longer than size", "5\r\nhello!\r\n0\r\n\r\n", "hello", errChunkEnd, ""},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n", "hello", errChunkEnd, ""},
		{"size line too long", "5;" + strings.Repeat("x", 4100) + "\r\nhello\r\n0\r\n\r\n", "", errChunkLineTooLong, ""},
		{"too much overhead", strings.Repeat("1;"+strings.Repeat("x", 100)+"\r\nx\r\n", 200) + "0\r\n\r\n", strings.Repeat("x", 200), errChunkOverhead, ""},
		{"malformed trailer", "0\r\nX\r\n\r\n", "", errTrailer, ""},
		{"indented trailer", "0\r\n X: 1\r\n\r\n", "", errTrailer, ""},
		{"ends early", "5\r\nhel", "hel", io.ErrUnexpectedEOF, ""},
		{"ends before the last CRLF", "0\r\n", "", io.ErrUnexpectedEOF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 4096)
			var b BodyReader
			b.Reset(br, &Head{Body: BodyChunked, ContentLength: -1})
			got, err := io.ReadAll(&b)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if tt.err == nil && string(got) != tt.body || tt.err != nil && !strings.HasPrefix(tt.body, string(got)) {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			if tt.err == nil {
				if rest, _ := io.ReadAll(br); string(rest) != tt.rest {
					t.Errorf("left %q, want %q", rest, tt.rest)
				}
			}
		})
	}
}
