namespace Isotun.State.Cluster;

/// <summary>
/// Whether a commit's conditions held (and its writes were applied), and a revision: the commit's own when it
/// succeeded, the store's current one when it did not.
/// </summary>
public readonly record struct CommitResult(bool Succeeded, long Revision);
