using BackupFuse.Core;

namespace BackupFuse.Core.Tests;

/// <summary>The cheap-layer vote, fed with made-up load times (no clock, no threads).</summary>
public sealed class LoadCostVoteTests
{
    private const double Rate = 1L << 30;        // 1 GiB/s: the threshold
    private const int Bytes = 1 << 20;
    private const double AtRate = 1.0 / (1 << 10); // 1 MiB in exactly 1/1024 s: the threshold itself

    [Fact]
    public void NoVerdictOfCheapBeforeTheMinimumNumberOfLoads()
    {
        var vote = new LoadCostVote(Rate, minSamples: 16, limit: 16);
        for (int i = 0; i < 15; i++)
        {
            Cheap(vote);
            Assert.False(vote.IsCheap, $"cheap after {i + 1} loads");
        }

        Cheap(vote);
        Assert.True(vote.IsCheap);
        Assert.Equal(16, vote.Samples);
        Cheap(vote);
        Assert.Equal(16, vote.Samples); // counting stops at the minimum
    }

    [Fact]
    public void LoadsFasterThanTheRateAreCheapAndTheRateItselfIsDear()
    {
        var vote = new LoadCostVote(Rate, minSamples: 0);
        vote.Record(Bytes, AtRate / 2);
        Assert.Equal(1, vote.Vote);
        vote.Record(Bytes, AtRate);
        Assert.Equal(0, vote.Vote);
        Assert.False(vote.IsCheap); // a tie is dear: keep caching
        vote.Record(Bytes, AtRate * 2);
        Assert.Equal(-1, vote.Vote);
    }

    [Fact]
    public void TheVoteIsClampedSoItFlipsWithinTheLimitPlusOneLoads()
    {
        var vote = new LoadCostVote(Rate, minSamples: 16, limit: 16);
        for (int i = 0; i < 1000; i++)
        {
            Cheap(vote);
        }

        Assert.Equal(16, vote.Vote);
        for (int i = 0; i < 16; i++)
        {
            Assert.True(vote.IsCheap, $"flipped after {i} dear loads");
            Dear(vote);
        }

        Assert.False(vote.IsCheap); // the 16th dear load flips it, not the 1000th
        for (int i = 0; i < 1000; i++)
        {
            Dear(vote);
        }

        Assert.Equal(-16, vote.Vote);
        for (int i = 0; i < 16; i++)
        {
            Cheap(vote);
        }

        Assert.False(vote.IsCheap);
        Cheap(vote);
        Assert.True(vote.IsCheap);
    }

    [Fact]
    public void AFewSlowLoadsAmongCheapOnesDoNotFlipTheVerdict()
    {
        var vote = new LoadCostVote(Rate);
        for (int i = 0; i < LoadCostVote.DefaultMinSamples; i++)
        {
            Cheap(vote);
        }

        for (int round = 0; round < 50; round++)
        {
            for (int i = 0; i < 10; i++)
            {
                Cheap(vote);
            }

            vote.Record(Bytes, 0.5); // preempted for half a second: one vote, however slow
            vote.Record(Bytes, 0.5);
            Assert.True(vote.IsCheap, $"round {round}");
        }
    }

    [Fact]
    public void ACustomLimitBoundsTheVote()
    {
        var vote = new LoadCostVote(Rate, minSamples: 2, limit: 3);
        for (int i = 0; i < 10; i++)
        {
            Dear(vote);
        }

        Assert.Equal(-3, vote.Vote);
        Cheap(vote);
        Cheap(vote);
        Cheap(vote);
        Assert.False(vote.IsCheap);
        Cheap(vote);
        Assert.True(vote.IsCheap);
    }

    private static void Cheap(LoadCostVote vote) => vote.Record(Bytes, AtRate / 4);

    private static void Dear(LoadCostVote vote) => vote.Record(Bytes, AtRate * 4);
}
