package directory

import (
	"testing"

	"github.com/go-ldap/ldap/v3/gssapi"
	krbgssapi "github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/types"
)

// TestSASLFinalTokenShapes: the server's security-layer offer verifies whether it comes
// as RFC 4121 writes it unrotated (MIT, Cyrus SASL: header|payload|checksum, RRC 0) or
// rotated as Active Directory sends it (RRC = EC: header|checksum|payload); a token
// altered in transit does not.
func TestSASLFinalTokenShapes(t *testing.T) {
	key := types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: make([]byte, 32)}
	for i := range key.KeyValue {
		key.KeyValue[i] = byte(i)
	}
	offer := &krbgssapi.WrapToken{Flags: 0b101, EC: 12, SndSeqNum: 7, Payload: []byte{0x07, 0x01, 0x00, 0x00}}
	if err := offer.SetCheckSum(key, keyusage.GSSAPI_ACCEPTOR_SEAL); err != nil {
		t.Fatal(err)
	}
	plain, err := offer.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rotated := append([]byte(nil), plain[:krbgssapi.HdrLen]...)
	rotated[6], rotated[7] = 0, 12
	data := plain[krbgssapi.HdrLen:]
	rotated = append(append(rotated, data[len(data)-12:]...), data[:len(data)-12]...)

	c := &saslClient{Client: &gssapi.Client{Subkey: key}, spn: "ldap/dc1"}
	for name, tok := range map[string][]byte{"unrotated": plain, "rotated as AD sends it": rotated} {
		out, err := c.NegotiateSaslAuth(tok, "")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var ans krbgssapi.WrapToken
		if err := ans.Unmarshal(out, false); err != nil || string(ans.Payload) != "\x00\x00\x00\x00" {
			t.Errorf("%s: answer %v %x", name, err, ans.Payload)
		}
		if ok, err := ans.Verify(key, keyusage.GSSAPI_INITIATOR_SEAL); !ok {
			t.Errorf("%s: answer does not verify: %v", name, err)
		}
	}
	bad := append([]byte(nil), plain...)
	bad[krbgssapi.HdrLen] ^= 1
	if _, err := c.NegotiateSaslAuth(bad, ""); err == nil {
		t.Error("an altered offer verified")
	}
	if _, err := c.NegotiateSaslAuth(plain[:10], ""); err == nil {
		t.Error("a short token was accepted")
	}
}
