using Isotun.State;

namespace Isotun.UnitTests.State;

/// <summary>The store contract on the in-memory twin.</summary>
public sealed class MemoryStateStoreTests : StateStoreContract
{
    protected override IStateStore Create() => new MemoryStateStore(Clock);
}
