package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"gearbox/store"
	"gearbox/store/internalapi"
)

var testMembers = []store.Member{
	{Name: "gb1", Addr: "10.0.0.1", Port: 7946, InternalAddr: "10.0.0.1:7947", Roles: []string{"broker", "node"}, Zone: "z1", Region: "r1", Status: "alive", Leader: true},
	{Name: "gb2", Addr: "10.0.0.2", Port: 7946, InternalAddr: "10.0.0.2:7947", Roles: []string{"node"}, Status: "failed"},
	{Name: "gb3", Addr: "fd00::3", Port: 7946, Status: "left"},
}

func TestPrintMembers(t *testing.T) {
	var buf bytes.Buffer
	if err := printMembers(&buf, testMembers); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME   ADDRESS         ROLES        ZONE  REGION  STATUS\n" +
		"gb1 *  10.0.0.1:7946   broker,node  z1    r1      alive\n" +
		"gb2    10.0.0.2:7946   node         -     -       failed\n" +
		"gb3    [fd00::3]:7946  -            -     -       left\n" +
		"\n* broker leader\n"
	if buf.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", buf.String(), want)
	}

	buf.Reset()
	if err := printMembers(&buf, testMembers[1:]); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "leader") {
		t.Errorf("table without a leader mentions one:\n%s", buf.String())
	}
}

func TestPrintMembersJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := printMembersJSON(&buf, testMembers); err != nil {
		t.Fatal(err)
	}
	var got []store.Member
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, testMembers) {
		t.Errorf("round trip = %+v", got)
	}
	buf.Reset()
	if err := printMembersJSON(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("no members: %q, want []", buf.String())
	}
}

func TestFetchMembers(t *testing.T) {
	api := http.NewServeMux()
	api.HandleFunc("GET "+internalapi.PathMembers, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"self": "gb1", "members": testMembers})
	})
	// The member's internal API: mutual TLS with the key derived from
	// its secret.
	srv := httptest.NewUnstartedServer(internalapi.RequirePeer("right", api))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Listener = tls.NewListener(srv.Listener, internalapi.ServerTLS("right"))
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	got, err := fetchMembers(context.Background(), addr, "right")
	if err != nil || len(got) != 3 || got[0].Name != "gb1" {
		t.Fatalf("fetchMembers = %v, %v", got, err)
	}
	for _, secret := range []string{"", "wrong"} {
		_, err := fetchMembers(context.Background(), addr, secret)
		if err == nil || err.Error() != "unauthorized: wrong or missing cluster secret (--cluster-secret-file or GEARBOX_CLUSTER_SECRET)" {
			t.Errorf("secret %q: err = %v", secret, err)
		}
	}

	srv.Close()
	_, err = fetchMembers(context.Background(), addr, "right")
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach gearbox member at "+addr+": ") {
		t.Errorf("closed server: err = %v", err)
	}
}
