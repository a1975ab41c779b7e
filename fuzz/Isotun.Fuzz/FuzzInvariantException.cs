namespace Isotun.Fuzz;

/// <summary>A parser returned without throwing but broke one of its promises (outcome, lengths, round trip).</summary>
public sealed class FuzzInvariantException(string message) : Exception(message);
