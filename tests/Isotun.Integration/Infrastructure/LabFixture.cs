namespace Isotun.Integration.Infrastructure;

/// <summary>
/// One lab for the whole suite (tag "it", underlay 198.18.10.0/23 so a developer's own lab can stay up),
/// built with the same <see cref="DemoLab"/> as `isotun lab up` and removed afterwards.
/// </summary>
public sealed class LabFixture() : DemoLabFixture("it", 5, TimeSpan.FromSeconds(60));

[CollectionDefinition(Name)]
public sealed class LabCollection : ICollectionFixture<LabFixture>
{
    public const string Name = "lab";
}
