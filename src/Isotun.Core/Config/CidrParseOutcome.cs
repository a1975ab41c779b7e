namespace Isotun.Config;

internal enum CidrParseOutcome
{
    Ok,

    /// <summary>Not "address/prefix".</summary>
    Malformed,

    /// <summary>The address part is not a strict IP literal.</summary>
    BadAddress,

    /// <summary>The prefix is not a number within the address family's width.</summary>
    BadPrefix,

    /// <summary>Bits after the prefix are set; the returned network is the masked one, for a suggestion.</summary>
    HostBitsSet,
}
