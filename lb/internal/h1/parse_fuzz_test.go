package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// The fuzz tests feed the same bytes to this package's parser, which
// FastServer reads messages with, and to net/http's, and check that they
// agree: both refuse, or both accept with the same method, target, path,
// Host, framing and body. The parser may refuse what net/http accepts
// only for the reasons it is stricter on purpose (see parse.go). Their
// seeds run with every go test; run the fuzzer with
//
//	go test ./lb/internal/h1 -run '^$' -fuzz FuzzParseRequest -fuzztime 1m
//	go test ./lb/internal/h1 -run '^$' -fuzz FuzzParseResponse -fuzztime 1m

// requestSeeds are tricky request heads and bodies, smuggling attempts
// among them.
var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET /a%20b?x=%zz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /lb%2Dstatus?format=json HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://b.example/x?y HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://b.example HTTP/1.1\r\n\r\n",
	"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
	"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
	"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
	"GET / HTTP/0.9\r\n\r\n",
	"GET / http/1.1\r\nHost: a\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\tX: b\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 \r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;ext\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5  \r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: y\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: y\r\n z\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n X: y\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX y: z\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: y\n\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X, transfer-encoding\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTrailer: Content-Length\r\nContent-Length: 1\r\n\r\nx",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: " + strings.Repeat("a,", 65) + "\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
	"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; GEAR=\"x\"; b=2\r\nCookie: c=3\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("y", 5000) + "\r\n\r\n",
	"GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n",
	"GET / HTTP/1.1",
	"",
}

// stricter reports whether err is one of the refusals in which the parser
// is stricter than net/http on purpose.
func stricter(err error, data []byte) bool {
	switch err {
	case errFolded, errVersion, errConnect, errTEHTTP10, errTEAndCL, errConnectionTokens:
		return true
	case errHeadTooLarge:
		return len(data) > MaxHeadBytes
	}
	return false
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Head
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		err := h.ReadRequest(br)
		req, herr := netHTTPRequest(data)
		switch {
		case err != nil && herr != nil:
			return
		case err != nil:
			if !stricter(err, data) {
				t.Fatalf("refused what net/http accepts: %v\n%q", err, data)
			}
			return
		case herr != nil:
			t.Fatalf("accepted what net/http refuses (%v): %q", herr, data)
		}
		if got := string(h.Method); got != req.Method {
			t.Errorf("method %q, net/http %q", got, req.Method)
		}
		if got := string(h.Target); got != req.RequestURI {
			t.Errorf("target %q, net/http %q", got, req.RequestURI)
		}
		if !h.PathIs(req.URL.Path) {
			t.Errorf("path %q is not net/http's %q", h.Path, req.URL.Path)
		}
		if got := string(h.Host); got != req.Host {
			t.Errorf("host %q, net/http %q", got, req.Host)
		}
		if h.Chunked != (len(req.TransferEncoding) > 0) || h.ContentLength != req.ContentLength {
			t.Errorf("chunked %v length %d, net/http %v %d", h.Chunked, h.ContentLength, req.TransferEncoding, req.ContentLength)
		}
		if h.Close != req.Close {
			t.Errorf("close %v, net/http %v", h.Close, req.Close)
		}
		var b BodyReader
		b.Reset(br, &h)
		compareBodies(t, &b, req.Body, data)
		if t.Failed() {
			t.Logf("input %q", data)
		}
	})
}

// netHTTPRequest reads data with http.ReadRequest and adds the checks
// that net/http's server makes on top of it.
func netHTTPRequest(data []byte) (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(data), 4096))
	if err != nil {
		return nil, err
	}
	if req.ProtoMajor != 1 {
		return nil, errVersion
	}
	// ReadRequest drops Host from the fields: read them again.
	tp := textproto.NewReader(bufio.NewReaderSize(bytes.NewReader(data), 4096))
	tp.ReadLine()
	mh, _ := tp.ReadMIMEHeader()
	hosts := mh["Host"]
	if req.ProtoMinor >= 1 && len(hosts) == 0 && req.Method != http.MethodConnect {
		return nil, errNoHost
	}
	if len(hosts) == 1 && !validHost([]byte(hosts[0])) {
		return nil, errHost
	}
	for k := range mh {
		if !isToken([]byte(k)) {
			return nil, errFieldName
		}
	}
	return req, nil
}

// compareBodies reads both bodies to their end and checks that they
// agree on the bytes and on whether the body was well formed.
func compareBodies(t *testing.T, ours io.Reader, theirs io.Reader, data []byte) {
	t.Helper()
	got, err := io.ReadAll(ours)
	want, herr := io.ReadAll(theirs)
	switch {
	case err != nil && herr != nil:
	case err != nil:
		t.Errorf("body refused: %v, net/http read %q", err, want)
	case herr != nil:
		t.Errorf("body %q accepted, net/http: %v", got, herr)
	case !bytes.Equal(got, want):
		t.Errorf("body %q, net/http %q", got, want)
	}
}

// responseSeeds are tricky response heads and bodies.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\n\r\nuntil the end",
	"HTTP/1.0 200 OK\r\n\r\nuntil the end",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1  200  OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200\tOK\r\n\r\n",
	"HTTP/1.1 2000 OK\r\n\r\n",
	"HTTP/1.1 20 OK\r\n\r\n",
	"HTTP/1.1 099 OK\r\n\r\n",
	"HTTP/1.1 +99 OK\r\n\r\n",
	"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 O\x00K\r\n\r\n",
	"HTTP/1.1 200 O\rK\r\n\r\n",
	"HTTP/1.2 200 OK\r\n\r\n",
	"HTTP/2.0 200 OK\r\n\r\n",
	"http/1.1 200 OK\r\n\r\n",
	"HTTP/1.1\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab",
	"HTTP/1.1 200 OK\r\nX : y\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: y\r\n z\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: y\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, headRequest bool) {
		var h Head
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		err := h.ReadResponse(br, headRequest)
		method := http.MethodGet
		if headRequest {
			method = http.MethodHead
		}
		resp, herr := http.ReadResponse(bufio.NewReaderSize(bytes.NewReader(data), 4096), &http.Request{Method: method})
		if herr == nil {
			// The parser is stricter than net/http's client in these.
			for k := range resp.Header {
				if !isToken([]byte(k)) {
					herr = errFieldName
				}
			}
			switch {
			case resp.ProtoMajor != 1 || resp.ProtoMinor > 1:
				herr = errVersion
			case resp.StatusCode < 100 || strings.ContainsFunc(resp.Status, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
				herr = errStatusLine
			}
		}
		switch {
		case err != nil && herr != nil:
			return
		case err != nil:
			if !stricter(err, data) {
				t.Fatalf("refused what net/http accepts: %v\n%q", err, data)
			}
			return
		case herr != nil:
			t.Fatalf("accepted what net/http refuses (%v): %q", herr, data)
		}
		if h.Status != resp.StatusCode || string(h.Reason) != resp.Status {
			t.Errorf("status %d %q, net/http %d %q", h.Status, h.Reason, resp.StatusCode, resp.Status)
		}
		if h.Chunked != (len(resp.TransferEncoding) > 0) || h.ContentLength != resp.ContentLength {
			t.Errorf("chunked %v length %d, net/http %v %d", h.Chunked, h.ContentLength, resp.TransferEncoding, resp.ContentLength)
		}
		bothTEAndCL := false
		for _, f := range h.Fields {
			bothTEAndCL = bothTEAndCL || h.Chunked && f.Kind == FieldContentLength
		}
		if h.Close != resp.Close && !bothTEAndCL {
			t.Errorf("close %v, net/http %v", h.Close, resp.Close)
		}
		var b BodyReader
		b.Reset(br, &h)
		compareBodies(t, &b, resp.Body, data)
		if t.Failed() {
			t.Logf("input %q", data)
		}
	})
}
