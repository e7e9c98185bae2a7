package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jmlgate/jmlgate/connectors"
)

// SQLSTATE codes the connector acts on.
const (
	codeDuplicateObject = "42710" // CREATE ROLE of a name that exists
	codeUniqueViolation = "23505" // the same, when two creates race past the check
	codeUndefinedObject = "42704" // the role named does not exist
	codeInternal        = "XX000" // among others "tuple concurrently updated"
	codeReadOnly        = "25006" // read_only_sql_transaction: a standby, or a read-only primary
)

// safeError is an error whose message has been through the redactor; it
// unwraps to the original errors so errors.Is/As (context.Canceled,
// *pgconn.PgError) still see them.
type safeError struct {
	msg  string
	errs []error
}

func (e *safeError) Error() string   { return e.msg }
func (e *safeError) Unwrap() []error { return e.errs }

// fail classifies err from the database for the operation op ("GRANT"):
//
//   - the caller's context ended: the context error, wrapped and not
//     classified (Retryable by connectors.ClassOf; the job was interrupted);
//   - a server error by SQLSTATE class: 08 (connection), 28 (invalid
//     authorization: see below), 40 (serialization failure, deadlock), 53
//     (insufficient resources), 55 (object in use, lock_timeout expired),
//     57 (statement_timeout expired, query cancelled, admin shutdown,
//     cannot connect now), 58 (system error) and XX (internal error, such
//     as "tuple concurrently updated") are Retryable, and so are 23505
//     unique_violation (a concurrent GRANT or CREATE ROLE inserted the same
//     catalog row) and 25006 read_only_sql_transaction (the DSN reached a
//     standby, typically during a failover, or a primary in read-only
//     mode); everything else, among them 42501 insufficient_privilege and
//     42704 undefined_object, is Permanent (a retry meets the same answer);
//   - anything else (refused, reset, timed out, TLS) is Retryable, except a
//     certificate that does not verify, which is Permanent.
//
// 28xxx (a rejected password, no pg_hba.conf entry, an unknown role) is
// Retryable on purpose: with ldap, pam, radius or gss authentication it is
// also what an outage of the directory behind the server looks like, and a
// password being rotated by a DBA fails until the DSN catches up. A
// configuration that is simply wrong therefore costs max_attempts retries
// before the job is dead-lettered, rather than dead-lettering every leaver
// during a directory outage.
//
// The message is redacted of the DSN and its password.
func (c *Conn) fail(ctx context.Context, op string, err error) error {
	msg := c.redact.apply(fmt.Sprintf("postgres %s: %v", op, err))
	if cerr := ctx.Err(); cerr != nil {
		return &safeError{msg: msg, errs: []error{err, cerr}}
	}
	se := &safeError{msg: msg, errs: []error{err}}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return se
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return &connectors.Error{Class: classOfCode(pgErr.Code), Err: se}
	}
	cl, _ := connectors.ClassOf(connectors.Transport(op, err))
	return &connectors.Error{Class: cl, Err: se}
}

// classOfCode maps a SQLSTATE to the dispatcher's decision.
func classOfCode(code string) connectors.Class {
	switch code {
	case codeUniqueViolation:
		// 23505 comes from two statements inserting the same catalog row
		// at once (CREATE ROLE, GRANT) more often than inTx retries: a
		// later attempt finds the row there.
		return connectors.Retryable
	case codeReadOnly:
		// After a failover the DSN's host (or its DNS name) points at
		// the new primary within minutes.
		return connectors.Retryable
	}
	if len(code) < 2 {
		return connectors.Retryable
	}
	switch code[:2] {
	case "08", "28", "40", "53", "55", "57", "58", "XX":
		return connectors.Retryable
	}
	return connectors.Permanent
}

// sqlState returns the SQLSTATE of a server error in err, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// refuse is a Permanent error of the connector's own making.
func refuse(format string, args ...any) error {
	return connectors.Errorf(connectors.Permanent, "postgres: "+format, args...)
}
