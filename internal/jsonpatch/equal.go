package jsonpatch

import (
	"bytes"
	"math/big"
)

// equalJSON reports whether two compact, valid JSON values are equal in RFC 6902 §4.6's
// sense: strings equal after unescaping, numbers numerically equal (1, 1.0 and 1e0 are
// one number), arrays element by element, objects with the same members regardless of
// order (a repeated name: the last one counts).
func equalJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	switch a[0] {
	case '{':
		if b[0] != '{' {
			return false
		}
		ma, mb := lastMembers(a), lastMembers(b)
		if len(ma) != len(mb) {
			return false
		}
		for k, va := range ma {
			vb, ok := mb[k]
			if !ok || !equalJSON(va, vb) {
				return false
			}
		}
		return true
	case '[':
		if b[0] != '[' {
			return false
		}
		ea, eb := appendElements(nil, a), appendElements(nil, b)
		if len(ea) != len(eb) {
			return false
		}
		for i := range ea {
			if !equalJSON(ea[i], eb[i]) {
				return false
			}
		}
		return true
	case '"':
		return b[0] == '"' && keyString(a[1:len(a)-1]) == keyString(b[1:len(b)-1])
	case 't', 'f', 'n':
		return false // literals are equal only byte for byte
	}
	if b[0] != '-' && (b[0] < '0' || b[0] > '9') {
		return false
	}
	return equalNumbers(a, b)
}

// lastMembers maps each member name of a compact object to its value (the last one, for
// a repeated name).
func lastMembers(obj []byte) map[string][]byte {
	ms := appendMembers(nil, obj)
	m := make(map[string][]byte, len(ms))
	for _, x := range ms {
		m[keyString(x.key)] = x.val
	}
	return m
}

// decimal is a JSON number as sign × 0.digits × 10^exp with no leading or trailing zero
// in digits (zero: no digits), so that equal numbers have equal decimals whatever their
// spelling. The exponent is a big.Int: "1e99999999999999999999" is valid JSON.
type decimal struct {
	neg    bool
	digits string
	exp    big.Int
}

func parseDecimal(num []byte) decimal {
	var d decimal
	i := 0
	if num[0] == '-' {
		d.neg = true
		i++
	}
	var digits []byte
	pointExp := 0 // digits before the point
	for ; i < len(num) && num[i] >= '0' && num[i] <= '9'; i++ {
		digits = append(digits, num[i])
		pointExp++
	}
	if i < len(num) && num[i] == '.' {
		for i++; i < len(num) && num[i] >= '0' && num[i] <= '9'; i++ {
			digits = append(digits, num[i])
		}
	}
	if i < len(num) && (num[i] == 'e' || num[i] == 'E') {
		d.exp.SetString(string(num[i+1:]), 10) // "+5", "-5" and "5" all parse
	}
	lead := 0
	for lead < len(digits) && digits[lead] == '0' {
		lead++
	}
	digits = digits[lead:]
	pointExp -= lead
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		return decimal{} // zero, -0 included
	}
	d.digits = string(digits)
	d.exp.Add(&d.exp, big.NewInt(int64(pointExp)))
	return d
}

func equalNumbers(a, b []byte) bool {
	da, db := parseDecimal(a), parseDecimal(b)
	return da.neg == db.neg && da.digits == db.digits && da.exp.Cmp(&db.exp) == 0
}
