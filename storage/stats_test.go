package storage

import (
	"errors"
	"fmt"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
)

// TestLevelDBStats: Stats reports goleveldb's level sizes once data is flushed to tables, and fails with
// ErrClosed after Close.
func TestLevelDBStats(t *testing.T) {
	cfg := DefaultLevelDBConfig(t.TempDir())
	cfg.WriteBufferMiB = 1
	db, err := OpenLevelDB(cfg)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 1024)
	for i := range 4096 { // 4 MiB through a 1 MiB write buffer: memtables are flushed to level-0 tables
		if err := db.Put(uint32(i%4), []byte(fmt.Sprintf("key-%06d", i)), val); err != nil {
			t.Fatal(err)
		}
	}
	var st leveldb.DBStats
	if err := db.Stats(&st); err != nil {
		t.Fatal(err)
	}
	if st.LevelSizes.Sum() == 0 || st.IOWrite == 0 {
		t.Fatalf("after 4 MiB of writes: level sizes %v, io written %d", st.LevelSizes, st.IOWrite)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Stats(&st); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stats after Close: %v, want ErrClosed", err)
	}
}
