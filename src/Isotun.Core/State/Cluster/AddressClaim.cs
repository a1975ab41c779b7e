using System.Net;

namespace Isotun.State.Cluster;

/// <summary>What <see cref="BlockAllocator.AllocateAsync"/> found for a user.</summary>
public enum AddressClaimOutcome
{
    /// <summary>The user had no address; this node gave one from its own blocks.</summary>
    New,

    /// <summary>The user's address, in a block this node holds (now, if it took the block over from a dead node).</summary>
    Sticky,

    /// <summary>The user's address is in a block another live node holds (<see cref="AddressClaim.Owner"/>): the user is served there.</summary>
    HeldElsewhere,

    /// <summary>The user has no address and this node has no room: its blocks are full and every block of the pool is held.</summary>
    Exhausted,
}

/// <summary>The outcome, the user's address (null when exhausted), and the node that holds its block.</summary>
public sealed record AddressClaim(AddressClaimOutcome Outcome, IPAddress? Address, string? Owner);
