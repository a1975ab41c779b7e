namespace Isotun.UnitTests.Protocol;

/// <summary>
/// Re-splits a byte vector into random reads, the way TCP/TLS may deliver it, so every parser is
/// exercised on partial input and not only on whole buffers.
/// </summary>
internal static class Resplitter
{
    /// <summary>Increasing exclusive end offsets; the last one is <paramref name="length"/>. Many 1-byte reads, some larger.</summary>
    public static IEnumerable<int> Boundaries(int length, Random random, int maxChunk = 64)
    {
        int position = 0;
        while (position < length)
        {
            int chunk = random.Next(4) == 0 ? 1 : random.Next(1, maxChunk + 1);
            position = Math.Min(length, position + chunk);
            yield return position;
        }
    }

    /// <summary>The chunks themselves, as fresh arrays (a reader never sees more than it was given).</summary>
    public static IEnumerable<byte[]> Chunks(byte[] data, Random random, int maxChunk = 64)
    {
        int start = 0;
        foreach (int end in Boundaries(data.Length, random, maxChunk))
        {
            yield return data[start..end];
            start = end;
        }
    }

    /// <summary>Seeds used by every resplit test; fixed so failures reproduce.</summary>
    public static IEnumerable<int> Seeds => Enumerable.Range(1, 25);
}
