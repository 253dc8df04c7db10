// Package krb holds what the two Kerberos clients (WinRM in collect/winrm, LDAP in
// directory) must agree on: how a credential's user name becomes a principal, and
// which KDC errors are a refused logon (counted for lockout, never retried).
package krb

import "strings"

// Principal turns a credential's user name into the Kerberos principal name and realm
// that gokrb5 wants apart: DOMAIN\user is user, "user@REALM" is user in REALM
// (upper-cased: Active Directory realms are the upper-cased DNS domain). An explicit
// realm wins over the suffix. gokrb5 takes the name as given: a whole "user@REALM" or
// DOMAIN\user would be an unknown principal at the KDC.
func Principal(username, realm string) (string, string) {
	user := username
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		user = user[i+1:]
	}
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		if realm == "" {
			realm = strings.ToUpper(user[i+1:])
		}
		user = user[:i]
	}
	return user, realm
}

// refusals are the KRB-ERROR codes (RFC 4120 §7.5.9, as gokrb5 names them) and gokrb5
// messages by which a KDC refuses a user's logon: wrong password (pre-authentication
// failed, or an AS-REP the password cannot decrypt), unknown user, account disabled or
// locked out, password expired.
var refusals = [...]string{
	"KDC_ERR_PREAUTH_FAILED",
	"KDC_ERR_C_PRINCIPAL_UNKNOWN",
	"KDC_ERR_CLIENT_REVOKED",
	"KDC_ERR_KEY_EXPIRED",
	"client password/keytab incorrect",
}

// Refusal returns the refusal msg (gokrb5 flattens KRB-ERRORs into text) carries, or "".
func Refusal(msg string) string {
	for _, s := range refusals {
		if strings.Contains(msg, s) {
			return s
		}
	}
	return ""
}
