package directory

import (
	"fmt"

	"github.com/go-ldap/ldap/v3/gssapi"
	"github.com/jcmturner/gokrb5/v8/crypto"
	krbgssapi "github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/types"
)

// saslClient is go-ldap's GSSAPI client with the last step of the SASL handshake
// (RFC 4752 §3.1) read as RFC 4121 §4.2.5 has it. go-ldap v3.4.15 reads the server's
// wrap token as header | checksum | payload, which is what Active Directory sends (its
// token is rotated: RRC = EC); an RFC 4121 server that does not rotate (MIT Kerberos,
// Cyrus SASL: OpenLDAP, 389-ds, Samba) sends header | payload | checksum with RRC 0, and
// go-ldap's bind fails with "checksum mismatch". Here the token is un-rotated by its RRC
// first, so both shapes verify.
type saslClient struct {
	*gssapi.Client
	spn string
}

// NegotiateSaslAuth verifies the server's security-layer offer and answers "no
// security layer" (TLS protects the connection), with no authorization identity.
func (c *saslClient) NegotiateSaslAuth(input []byte, authzid string) ([]byte, error) {
	if len(input) < krbgssapi.HdrLen {
		return nil, fmt.Errorf("SASL GSSAPI: the server's final token is %d bytes, shorter than a wrap token header", len(input))
	}
	b := append([]byte(nil), input...)
	if rrc := int(b[6])<<8 | int(b[7]); rrc > 0 {
		data := b[krbgssapi.HdrLen:]
		if n := len(data); n > 0 {
			r := rrc % n
			rot := append(append([]byte(nil), data[r:]...), data[:r]...)
			copy(data, rot)
		}
		b[6], b[7] = 0, 0
	}
	var wt krbgssapi.WrapToken
	if err := wt.Unmarshal(b, true); err != nil {
		return nil, fmt.Errorf("SASL GSSAPI: the server's final token: %w", err)
	}
	key := c.Subkey
	if wt.Flags&0b100 == 0 || key.KeyType == 0 {
		_, k, err := c.Client.GetServiceTicket(c.spn) // the cached ticket's session key
		if err != nil {
			return nil, fmt.Errorf("SASL GSSAPI: %w", err)
		}
		key = k
	}
	if ok, err := wt.Verify(key, keyusage.GSSAPI_ACCEPTOR_SEAL); !ok || err != nil {
		return nil, fmt.Errorf("SASL GSSAPI: the server's final token does not verify: %v", err)
	}
	if len(wt.Payload) != 4 {
		return nil, fmt.Errorf("SASL GSSAPI: the server's final token carries %d bytes, not the 4 of a security-layer offer", len(wt.Payload))
	}
	return answer(key, authzid)
}

// answer is the client's final wrap token: no security layer, max size 0, authzid.
func answer(key types.EncryptionKey, authzid string) ([]byte, error) {
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, fmt.Errorf("SASL GSSAPI: %w", err)
	}
	// Flags AcceptorSubkey and sequence number 1, as go-ldap's client sends them.
	tok := &krbgssapi.WrapToken{Flags: 0b100, EC: uint16(et.GetHMACBitLength() / 8), SndSeqNum: 1,
		Payload: append([]byte{0, 0, 0, 0}, authzid...)}
	if err := tok.SetCheckSum(key, keyusage.GSSAPI_INITIATOR_SEAL); err != nil {
		return nil, fmt.Errorf("SASL GSSAPI: %w", err)
	}
	return tok.Marshal()
}
