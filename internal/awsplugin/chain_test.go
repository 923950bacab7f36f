package awsplugin

import (
	"encoding/pem"
	"os"
)

// knownChainDER is a four-certificate AWS-shaped chain (leaf first).
var knownChainDER = func() [][]byte {
	data, err := os.ReadFile("../revocation/testdata/chain.pem")
	if err != nil {
		panic(err)
	}
	var chain [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return chain
		}
		chain = append(chain, b.Bytes)
	}
}()
