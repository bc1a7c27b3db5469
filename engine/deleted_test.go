package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A deletion (state.delete) is a newer snapshot with no data: applied like any other, so
// that the window learns the topic is unset, and the revisions go on from it.
func TestDeletedSnapshotIsAppliedAsANewerRevision(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	c.InvalidateRaw(event("2"))
	env.answerFetch(Snapshot{Revision: "2", Deleted: true})
	call := env.expectApply("2")
	require.True(t, call.snapshot.Deleted, "apply of a deletion: got Deleted=false")
	require.Empty(t, call.snapshot.Data)
	env.ack(call, nil)
	c.InvalidateRaw(event("3"))
	env.fetchAndApply("3")
	require.Equal(t, []Revision{"1", "2", "3"}, env.appliedRevisions())
}
