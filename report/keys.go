package report

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// GenerateKey creates an ed25519 key pair for signing manifests: the private key as a
// PKCS#8 "PRIVATE KEY" PEM file with mode 0600, the public key as a PKIX "PUBLIC KEY"
// PEM file with mode 0640. Existing files are never overwritten.
func GenerateKey(privPath, pubPath string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	pk, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk}), 0o640); err != nil {
		_ = os.Remove(privPath)
		return fmt.Errorf("generate key: %w", err)
	}
	return nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

// LoadPrivateKey reads a signing key: a PKCS#8 PEM file (as GenerateKey writes), or raw
// base64 of the 32-byte seed or the 64-byte private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	priv, isPEM, data, err := readKey[ed25519.PrivateKey](path, "private", x509.ParsePKCS8PrivateKey)
	if err != nil || isPEM {
		return priv, err
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("load private key %s: neither PEM nor base64", path)
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(raw), nil
	}
	return nil, fmt.Errorf("load private key %s: %d bytes, want %d or %d", path, len(raw), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// LoadPublicKey reads a verification key: a PKIX PEM file (as GenerateKey writes) or raw
// base64 of the 32-byte key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	pub, isPEM, data, err := readKey[ed25519.PublicKey](path, "public", x509.ParsePKIXPublicKey)
	if err != nil || isPEM {
		return pub, err
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("load public key %s: want PEM or base64 of %d bytes", path, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// readKey reads the key file of LoadPrivateKey or LoadPublicKey (kind "private" or
// "public" names it in errors). For a PEM file it parses the block with parse, which
// must yield a K, and returns that key with isPEM true; any other file it returns as
// data, for the caller to decode.
func readKey[K ed25519.PrivateKey | ed25519.PublicKey](path, kind string, parse func(der []byte) (any, error)) (key K, isPEM bool, data []byte, err error) {
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, false, nil, fmt.Errorf("load %s key: %w", kind, err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, false, data, nil
	}
	k, err := parse(b.Bytes)
	if err != nil {
		return nil, true, nil, fmt.Errorf("load %s key %s: %w", kind, path, err)
	}
	key, ok := k.(K)
	if !ok {
		return nil, true, nil, fmt.Errorf("load %s key %s: %T is not an ed25519 key", kind, path, k)
	}
	return key, true, nil, nil
}
