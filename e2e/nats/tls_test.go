package nats

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

// TestTLS: a server with a private CA that requires client certificates. The sidecar
// connects with --nats-tlsca, --nats-tlscert and --nats-tlskey, and without the CA it
// fails at startup saying which flag to give.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caPEM := newCA(t)
	serverCert := issue(t, ca, caKey, "nats-server", true)
	clientCert := issue(t, ca, caKey, "sidecar", false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	caFile := writePEM(t, dir, "ca.pem", caPEM)
	certFile := writePEM(t, dir, "client.pem", clientCert.certPEM)
	keyFile := writePEM(t, dir, "client-key.pem", clientCert.keyPEM)

	n := startNode(t, &server.Options{
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serverCert.pair},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
		},
	})
	url := strings.Replace(n.url(), "nats://", "tls://", 1)

	p := startSidecar(t, "A", "--nats-url", url, "--nats-tlsca", caFile, "--nats-tlscert", certFile, "--nats-tlskey", keyFile)
	rev := p.set(t, "t", `"over tls"`)
	got, _ := p.get(t, "t")
	require.Equal(t, rev, got)

	code, stderr := runFailing(t, "--nats-url", url, "--nats-tlscert", certFile, "--nats-tlskey", keyFile)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--nats-tlsca")
	code, stderr = runFailing(t, "--nats-url", url, "--nats-tlscert", certFile)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--nats-tlscert and --nats-tlskey go together")
}

type issued struct {
	pair            tls.Certificate
	certPEM, keyPEM []byte
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "statesync test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, isServer bool) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isServer {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return issued{pair: pair, certPEM: certPEM, keyPEM: keyPEM}
}

func writePEM(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}
