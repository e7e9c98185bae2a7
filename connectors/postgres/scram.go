package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// SCRAM-SHA-256 parameters of the verifiers RotateSecret stores; they are
// PostgreSQL's own defaults (scram_iterations = 4096, 16-byte salt).
const (
	scramIterations = 4096
	scramSaltLen    = 16
	maxSecretLen    = 1024
)

// checkSecret accepts printable ASCII only. SCRAM prepares passwords with
// SASLprep (RFC 4013) and clients disagree on its edge cases (libpq falls
// back to the raw bytes, pgx uses PRECIS); for printable ASCII every
// implementation leaves the password as it is, so the verifier computed
// here matches whatever client the shared account's users run.
func checkSecret(secret []byte) error {
	switch {
	case len(secret) == 0:
		return errors.New("empty secret")
	case len(secret) > maxSecretLen:
		return fmt.Errorf("secret of %d bytes: at most %d", len(secret), maxSecretLen)
	}
	for _, c := range secret {
		if c < 0x20 || c > 0x7e {
			return errors.New("secret must be printable ASCII (SASLprep leaves only those unchanged in every client)")
		}
	}
	return nil
}

// scramVerifier returns the SCRAM-SHA-256 verifier of password (RFC 5802
// section 3, RFC 7677) in PostgreSQL's rolpassword format:
//
//	SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// PostgreSQL stores a PASSWORD value in this form as is, so the clear
// password never reaches the server.
func scramVerifier(password []byte, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, string(password), salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

// newScramVerifier is scramVerifier with a fresh random salt.
func newScramVerifier(password []byte) (string, error) {
	salt := make([]byte, scramSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramVerifier(password, salt, scramIterations)
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
