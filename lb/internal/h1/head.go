package h1

import (
	"bufio"
	"bytes"
	"net/url"
)

// PathIs reports whether the request's path, unescaped, is path.
func (h *Head) PathIs(path string) bool {
	if h.Abs != nil {
		return h.Abs.Path == path
	}
	if bytes.IndexByte(h.Path, '%') >= 0 {
		u, err := url.PathUnescape(string(h.Path))
		return err == nil && u == path
	}
	return string(h.Path) == path
}

// Cookie returns the value of the first cookie called name in the
// request's Cookie fields, without surrounding double quotes, and nil if
// there is none. The value is a slice of the head's buffer.
func (h *Head) Cookie(name string) []byte {
	for i := range h.Fields {
		f := &h.Fields[i]
		if f.Kind != FieldCookie {
			continue
		}
		for rest := f.Value; len(rest) > 0; {
			var part []byte
			part, rest = cutByte(rest, ';')
			k, v := cutByte(trimOWS(part), '=')
			if v == nil || string(k) != name {
				continue
			}
			for len(v) > 0 && v[0] == '"' {
				v = v[1:]
			}
			for len(v) > 0 && v[len(v)-1] == '"' {
				v = v[:len(v)-1]
			}
			return v
		}
	}
	return nil
}

// WriteFields writes the fields of h that are passed on, but for its
// framing (Content-Length, Transfer-Encoding).
func (h *Head) WriteFields(bw *bufio.Writer) {
	for i := range h.Fields {
		f := &h.Fields[i]
		if f.Drop || f.Kind == FieldContentLength || f.Kind == FieldTransferEncoding {
			continue
		}
		WriteField(bw, f.Name, f.Value)
	}
}

// WriteField writes one field line.
func WriteField(bw *bufio.Writer, name, value []byte) {
	bw.Write(name)
	bw.WriteString(": ")
	bw.Write(value)
	bw.WriteString("\r\n")
}

// WriteCookieWithout writes a Cookie field line of value v without the
// cookies called name; nothing if no other cookie is left. Other cookies
// pass as they came.
func WriteCookieWithout(bw *bufio.Writer, v []byte, name string) {
	if !bytes.Contains(v, []byte(name)) {
		WriteField(bw, []byte("Cookie"), v)
		return
	}
	n := 0
	for rest := v; len(rest) > 0; {
		var part []byte
		part, rest = cutByte(rest, ';')
		if part = trimOWS(part); len(part) == 0 {
			continue
		}
		if k, _ := cutByte(part, '='); string(k) == name {
			continue
		}
		if n == 0 {
			bw.WriteString("Cookie: ")
		} else {
			bw.WriteString("; ")
		}
		bw.Write(part)
		n++
	}
	if n > 0 {
		bw.WriteString("\r\n")
	}
}

// cutByte slices b around the first sep: before and after it, or all of
// b and nil.
func cutByte(b []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}
