using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Isotun.Fuzz;

/// <summary>The checks a target makes after each parse; a failed one throws, which AFL records as a crash.</summary>
public static class Invariant
{
    public static void That([DoesNotReturnIf(false)] bool condition, [CallerArgumentExpression(nameof(condition))] string? expression = null)
    {
        if (!condition)
        {
            throw new FuzzInvariantException($"invariant broken: {expression}");
        }
    }

    /// <summary>An outcome is one of its enum's named values.</summary>
    public static void Defined<T>(T value, [CallerArgumentExpression(nameof(value))] string? expression = null)
        where T : struct, Enum
    {
        if (!Enum.IsDefined(value))
        {
            throw new FuzzInvariantException($"outcome out of its enum: {expression} = {value}");
        }
    }

    /// <summary>A length a parser reports as consumed lies within what it was given.</summary>
    public static void Within(int consumed, int available, [CallerArgumentExpression(nameof(consumed))] string? expression = null)
    {
        if (consumed < 0 || consumed > available)
        {
            throw new FuzzInvariantException($"consumed length out of the input: {expression} = {consumed}, input {available}");
        }
    }
}
