package postgres

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// storedVerifier is a rolpassword SCRAM secret taken apart the way a
// server reads it.
type storedVerifier struct {
	iterations           int
	salt                 []byte
	storedKey, serverKey []byte
}

func parseVerifier(v string) (storedVerifier, error) {
	var sv storedVerifier
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$")
	if !ok {
		return sv, errors.New("no SCRAM-SHA-256$ prefix")
	}
	iterSalt, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return sv, errors.New("no $ between salt and keys")
	}
	iter, salt, ok1 := strings.Cut(iterSalt, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return sv, errors.New("missing ':'")
	}
	var err error
	if sv.iterations, err = strconv.Atoi(iter); err != nil {
		return sv, err
	}
	dec := base64.StdEncoding.DecodeString
	if sv.salt, err = dec(salt); err != nil {
		return sv, err
	}
	if sv.storedKey, err = dec(stored); err != nil {
		return sv, err
	}
	if sv.serverKey, err = dec(server); err != nil {
		return sv, err
	}
	if len(sv.storedKey) != 32 || len(sv.serverKey) != 32 {
		return sv, errors.New("keys are not 32 bytes")
	}
	return sv, nil
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// checkProof is the server's check of RFC 5802 section 3: ClientKey =
// ClientProof XOR HMAC(StoredKey, AuthMessage) must hash to StoredKey.
func (sv storedVerifier) checkProof(authMessage string, proof []byte) bool {
	sig := mac(sv.storedKey, authMessage)
	if len(proof) != len(sig) {
		return false
	}
	clientKey := make([]byte, len(sig))
	for i := range sig {
		clientKey[i] = proof[i] ^ sig[i]
	}
	h := sha256.Sum256(clientKey)
	return hmac.Equal(h[:], sv.storedKey)
}

// TestScramVerifierRFC7677 checks the verifier against the example
// exchange of RFC 7677 section 3 (user "user", password "pencil").
func TestScramVerifierRFC7677(t *testing.T) {
	t.Parallel()
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramVerifier([]byte("pencil"), salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$") {
		t.Fatalf("verifier %q", v)
	}
	sv, err := parseVerifier(v)
	if err != nil {
		t.Fatal(err)
	}
	const (
		clientFirstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst     = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinalBare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
		proof           = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverSignature = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	authMessage := clientFirstBare + "," + serverFirst + "," + clientFinalBare
	p, _ := base64.StdEncoding.DecodeString(proof)
	if !sv.checkProof(authMessage, p) {
		t.Error("RFC 7677 client proof does not verify against StoredKey")
	}
	if got := base64.StdEncoding.EncodeToString(mac(sv.serverKey, authMessage)); got != serverSignature {
		t.Errorf("server signature %s, RFC 7677 says %s", got, serverSignature)
	}
	p[0] ^= 1
	if sv.checkProof(authMessage, p) {
		t.Error("a corrupted proof verified")
	}
}

func TestCheckSecret(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		secret string
		ok     bool
	}{
		{"", false},
		{"a", true},
		{` !"#$%&'()*+,-./09:;<=>?@AZ[\]^_` + "`az{|}~", true},
		{strings.Repeat("x", 1024), true},
		{strings.Repeat("x", 1025), false},
		{"tab\there", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"pässword", false},
		{"\xff", false},
	} {
		if err := checkSecret([]byte(tc.secret)); (err == nil) != tc.ok {
			t.Errorf("checkSecret(%q) = %v, want ok=%v", tc.secret, err, tc.ok)
		}
	}
}

// scramServer speaks just enough of the PostgreSQL protocol to run a SCRAM-
// SHA-256 exchange (RFC 5802, RFC 7677) against verifier and accept or
// refuse the login; it returns its address.
func scramServer(t *testing.T, verifier string) string {
	t.Helper()
	sv, err := parseVerifier(verifier)
	if err != nil {
		t.Fatalf("stored verifier %q: %v", verifier, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSCRAM(c, sv)
		}
	}()
	return ln.Addr().String()
}

func serveSCRAM(c net.Conn, sv storedVerifier) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	be := pgproto3.NewBackend(c, c)
	msg, err := be.ReceiveStartupMessage()
	if _, ok := msg.(*pgproto3.SSLRequest); ok {
		c.Write([]byte("N"))
		msg, err = be.ReceiveStartupMessage()
	}
	if _, ok := msg.(*pgproto3.StartupMessage); !ok || err != nil {
		return
	}
	refuse := func(why string) {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed: " + why})
		be.Flush()
	}
	be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	if be.Flush() != nil || be.SetAuthType(pgproto3.AuthTypeSASL) != nil {
		return
	}
	msg, err = be.Receive()
	first, ok := msg.(*pgproto3.SASLInitialResponse)
	if err != nil || !ok || first.AuthMechanism != "SCRAM-SHA-256" {
		refuse("no SCRAM-SHA-256 initial response")
		return
	}
	bare, ok := strings.CutPrefix(string(first.Data), "n,,")
	if !ok {
		refuse("unexpected GS2 header")
		return
	}
	_, clientNonce, ok := strings.Cut(bare, ",r=")
	if !ok {
		refuse("no client nonce")
		return
	}
	nonce := clientNonce + "jmlgateTestServerNonce"
	serverFirst := fmt.Sprintf("r=%s,s=%s,i=%d", nonce, base64.StdEncoding.EncodeToString(sv.salt), sv.iterations)
	be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if be.Flush() != nil || be.SetAuthType(pgproto3.AuthTypeSASLContinue) != nil {
		return
	}
	msg, err = be.Receive()
	final, ok := msg.(*pgproto3.SASLResponse)
	if err != nil || !ok {
		refuse("no SCRAM final message")
		return
	}
	i := bytes.LastIndex(final.Data, []byte(",p="))
	if i < 0 || !bytes.Contains(final.Data[:i], []byte(",r="+nonce)) {
		refuse("malformed client-final-message")
		return
	}
	proof, err := base64.StdEncoding.DecodeString(string(final.Data[i+3:]))
	authMessage := bare + "," + serverFirst + "," + string(final.Data[:i])
	if err != nil || !sv.checkProof(authMessage, proof) {
		refuse("proof does not match the stored verifier")
		return
	}
	be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + base64.StdEncoding.EncodeToString(mac(sv.serverKey, authMessage)))})
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	be.Receive() // Terminate, or the client hanging up
}

// scramLogin connects to addr as user with password through pgx's own
// SCRAM client, which also checks the server's signature (ServerKey).
func scramLogin(ctx context.Context, addr, user, password string) error {
	host, port, _ := net.SplitHostPort(addr)
	conf, err := pgconn.ParseConfig("host=" + host + " port=" + port + " dbname=test sslmode=disable")
	if err != nil {
		return err
	}
	conf.User, conf.Password = user, password
	conn, err := pgconn.ConnectConfig(ctx, conf)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// TestScramServerHarness makes sure the SCRAM server of these tests can
// fail: a verifier made for one password refuses another.
func TestScramServerHarness(t *testing.T) {
	t.Parallel()
	v, err := newScramVerifier([]byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	addr := scramServer(t, v)
	ctx := tctx(t)
	if err := scramLogin(ctx, addr, "u", "right"); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := scramLogin(ctx, addr, "u", "wrong"); err == nil {
		t.Error("wrong password accepted")
	}
}
