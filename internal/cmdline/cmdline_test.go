package cmdline

import (
	"encoding/base64"
	"strings"
	"testing"

	"gearbox/store"
)

func TestClusterSecret(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	derived, err := store.DeriveSecret(key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, secret, encrypt string
		want                  string
		wantDerived           bool
		wantErr               string
	}{
		{name: "neither", want: ""},
		{name: "secret only", secret: "s3cret", want: "s3cret"},
		{name: "secret wins over key", secret: "s3cret", encrypt: key, want: "s3cret"},
		{name: "derived from key", encrypt: key, want: derived, wantDerived: true},
		{name: "bad key", encrypt: "not base64!", wantErr: "--encrypt: decode gossip key"},
		{name: "short key", encrypt: base64.StdEncoding.EncodeToString([]byte("short")), wantErr: "5 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d, err := ClusterSecret(tt.secret, tt.encrypt)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("clusterSecret = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || d != tt.wantDerived {
				t.Fatalf("clusterSecret = %q, %v, %v; want %q, %v", got, d, err, tt.want, tt.wantDerived)
			}
		})
	}
	if derived == "" || derived == key {
		t.Fatalf("derived secret %q must be neither empty nor the key", derived)
	}
}
