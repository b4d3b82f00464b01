package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// sealer encrypts and authenticates gossip payloads with a key derived from
// the cluster secret (AES-256-GCM), so that a process that joined the serf
// pool without the secret can neither read records from events nor inject
// them. With no secret, payloads travel in the clear.
type sealer struct {
	aead cipher.AEAD // nil: no secret, no sealing
}

func newSealer(secret string) (*sealer, error) {
	if secret == "" {
		return &sealer{}, nil
	}
	key := deriveKey(secret, "gearbox event payload key")
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) overhead() int {
	if s.aead == nil {
		return 0
	}
	return s.aead.NonceSize() + s.aead.Overhead()
}

func (s *sealer) seal(plain []byte) ([]byte, error) {
	if s.aead == nil {
		return plain, nil
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, nil), nil
}

var errBadSeal = errors.New("payload not sealed with this cluster's secret")

func (s *sealer) open(sealed []byte) ([]byte, error) {
	if s.aead == nil {
		return sealed, nil
	}
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errBadSeal
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, errBadSeal
	}
	return plain, nil
}

func deriveKey(secret, purpose string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// DeriveSecret returns the cluster secret derived from a base64 serf
// encryption key, used when --cluster-secret is unset and --encrypt is set.
func DeriveSecret(encryptKey string) (string, error) {
	key, err := DecodeKey(encryptKey)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(deriveKey(string(key), "gearbox cluster secret")), nil
}

// DeriveGossipKey returns the 32-byte serf gossip key derived from the
// cluster secret, used when no gossip key of its own is given: gossip is
// then always encrypted, and one secret is all an operator manages. A
// process that does not hold the secret can neither read gossip nor join.
func DeriveGossipKey(secret string) []byte {
	return deriveKey(secret, "gearbox gossip key")
}

// DecodeKey decodes and checks a base64 serf gossip key (16, 24 or 32 bytes).
func DecodeKey(encryptKey string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(encryptKey)
	if err != nil {
		return nil, fmt.Errorf("decode gossip key: not base64: %w", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("decode gossip key: %d bytes, want 16, 24 or 32", len(key))
}

// SealSecret encrypts plain, a secret that a record carries (an alias's
// TLS private key), with a key derived from the cluster secret and
// purpose, and returns it base64-encoded: what the store keeps and
// gossips is never the secret in the clear. It refuses an empty cluster
// secret.
func SealSecret(clusterSecret, purpose string, plain []byte) (string, error) {
	s, err := valueSealer(clusterSecret, purpose)
	if err != nil {
		return "", err
	}
	sealed, err := s.seal(plain)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sealed), nil
}

// OpenSecret returns what SealSecret sealed with the same cluster secret
// and purpose.
func OpenSecret(clusterSecret, purpose, sealed string) ([]byte, error) {
	s, err := valueSealer(clusterSecret, purpose)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, errBadSeal
	}
	return s.open(raw)
}

func valueSealer(clusterSecret, purpose string) (*sealer, error) {
	if clusterSecret == "" {
		return nil, errors.New("seal a secret: the cluster has no secret")
	}
	return newSealer(clusterSecret + "\x00sealed value: " + purpose)
}
