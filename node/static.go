package node

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"

	"gearbox/lb"
)

// serverProgram is a Program that serves handler on addr from inside the
// node: the static cartridge's gears, which run no command of their own.
type serverProgram struct {
	addr    string
	handler http.Handler
}

var _ Program = serverProgram{}

func (p serverProgram) Launch(out io.Writer) (Run, error) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: p.handler, ErrorLog: log.New(out, "gearbox: ", 0)}
	// The gear's port is open to the network, as any gear's: the server
	// runs in the node's process, so a client must not hold its
	// connections with a trickled body or an answer it does not read.
	// No cap: what comes through load balancers is capped there, as for
	// any other gear.
	lb.GuardServer(srv, lb.Limits{HeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BodyTimeout: time.Minute, WriteTimeout: time.Minute})
	r := &serverRun{srv: srv, done: make(chan struct{})}
	go func() {
		err := srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			r.err = err
		}
		close(r.done)
	}()
	return r, nil
}

// serverRun is one run of a serverProgram.
type serverRun struct {
	srv  *http.Server
	done chan struct{}
	err  error // set before done is closed
}

func (r *serverRun) PID() int              { return 0 }
func (r *serverRun) Done() <-chan struct{} { return r.done }
func (r *serverRun) Err() error {
	<-r.done
	return r.err
}

// Stop lets requests in flight finish for up to grace, then closes the
// rest.
func (r *serverRun) Stop(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		r.srv.Close()
	}
	<-r.done
}

// welcomePage is what the static cartridge serves until code is deployed.
var welcomePage = template.Must(template.New("welcome").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.App}} - welcome to gearbox</title>
<style>body{font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}code{background:#eee;padding:0 .2em}</style>
</head>
<body>
<h1>Welcome to {{.App}}</h1>
<p>Your application <strong>{{.App}}</strong> in domain <strong>{{.Namespace}}</strong> is running on gearbox.
This page is served by gear <code>{{.Gear}}</code>.</p>
<p>Deploy your code with <code>gearbox app deploy {{.App}} DIR</code>: a <code>gearbox.yml</code> with a
<code>web:</code> command (serving HTTP on <code>$GEARBOX_IP:$PORT</code>) runs that command, and a folder of
plain files is served as it is.</p>
</body>
</html>
`))

// welcomeHandler serves the welcome page of gear gearID of app in
// namespace ns at "/" (the default health path), and 404 elsewhere.
func welcomeHandler(app, ns, gearID string) http.Handler {
	var b bytes.Buffer
	welcomePage.Execute(&b, struct{ App, Namespace, Gear string }{app, ns, gearID})
	page := b.Bytes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		w.Write(page)
	})
}

// staticHandler serves the files of a deployment unpacked in dir, its
// index.html at "/". Unpack made sure that no link leads out of dir.
func staticHandler(dir string) http.Handler {
	fs := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		fs.ServeHTTP(w, r)
	})
}
