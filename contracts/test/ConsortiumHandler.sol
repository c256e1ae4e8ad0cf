// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "../ConsortiumRegistry.sol";
import "../DataUseAuthorization.sol";
import "../EvidenceRegistry.sol";

/// @dev The few forge cheatcodes used here (no forge-std: nothing is downloaded).
interface Vm {
    function prank(address sender) external;
    function warp(uint256 timestamp) external;
    function sign(uint256 privateKey, bytes32 digest) external returns (uint8 v, bytes32 r, bytes32 s);
    function addr(uint256 privateKey) external returns (address);
}

/// @title What forge's invariant fuzzer calls: random members doing random consortium actions.
/// @notice Every action is attempted as some actor (genesis members and would-be candidates); reverts are
///         fine. Ghost state records what must never happen; ConsortiumInvariants asserts on it.
contract ConsortiumHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    ConsortiumRegistry public immutable registry;
    DataUseAuthorization public immutable auth;
    EvidenceRegistry public immutable evidence;
    address[] public actors;

    // ghost state
    bool public suspendedChangedState;      // a member not in good standing (or a non-member) changed state
    bool public admittedWithoutSupermajority;
    bool public votedTwice;
    bool public rootOverwritten;
    mapping(uint256 => mapping(address => uint256)) public votesBy;
    mapping(uint256 => uint256) public votesCounted;
    uint256 public proposals;
    uint256 public grantsMade;
    // first anchoring of each (submitter, root): batch id and size
    mapping(bytes32 => bytes32) public firstBatchId;
    mapping(bytes32 => uint64) public firstSize;
    bytes32[] public anchoredKeys;
    mapping(bytes32 => address) public keySubmitter;
    mapping(bytes32 => bytes32) public keyRoot;
    uint256 public calls;

    constructor(ConsortiumRegistry r, DataUseAuthorization a, EvidenceRegistry e, address[] memory actors_) {
        registry = r;
        auth = a;
        evidence = e;
        actors = actors_;
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function anchoredCount() external view returns (uint256) {
        return anchoredKeys.length;
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    /// @dev Called after every successful state change made as `actor`.
    function _changed(address actor, bool wasGood) internal {
        if (!wasGood) suspendedChangedState = true;
        calls += 1;
        actor;
    }

    // ------------------------------------------------------------ the grant adapter
    // The one place that calls DataUseAuthorization.grant: a grant needs a consent bound to its fields.
    // A data subject's key: it signs a fresh consent naming exactly the grant about to be made.
    uint256 internal constant SUBJECT_KEY = 0xA11CE;
    uint256 internal consentNonce;

    function _grantAs(address owner, address grantee, bytes32 datasetId, DataUseAuthorization.Purpose purpose,
                      uint64 notBefore, uint64 expiresAt) internal returns (bool) {
        DataUseAuthorization.Consent memory c = DataUseAuthorization.Consent(
            vm.addr(SUBJECT_KEY), owner, grantee, datasetId, purpose, bytes32(0), expiresAt, bytes32(0),
            bytes32(++consentNonce));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(SUBJECT_KEY, auth.consentDigest(c));
        vm.prank(owner);
        try auth.grant(grantee, datasetId, purpose, bytes32(0), notBefore, expiresAt, c, abi.encodePacked(r, s, v)) returns (uint256) {
            return true;
        } catch {
            return false;
        }
    }

    // ------------------------------------------------------------ time

    function warp(uint32 secondsAhead) external {
        vm.warp(block.timestamp + (secondsAhead % 1 days));  // proposals live 7 days
    }

    // ------------------------------------------------------------ governance

    function propose(uint256 actorSeed, uint256 candidateSeed, uint8 roleSeed) external {
        address actor = _actor(actorSeed);
        bool good = registry.isInGoodStanding(actor);
        ConsortiumRegistry.Role role = ConsortiumRegistry.Role(1 + roleSeed % 5);
        vm.prank(actor);
        try registry.propose(_actor(candidateSeed), "candidate", role, "", bytes32(0), bytes32(0), 0) returns (uint256 id) {
            proposals = id;
            _changed(actor, good);
        } catch {}
    }

    function proposeExpulsion(uint256 actorSeed, uint256 targetSeed) external {
        address actor = _actor(actorSeed);
        bool good = registry.isInGoodStanding(actor);
        vm.prank(actor);
        try registry.proposeExpulsion(_actor(targetSeed), bytes32(0), 0) returns (uint256 id) {
            proposals = id;
            _changed(actor, good);
        } catch {}
    }

    /// @notice A round of votes on one proposal: each actor whose bit is set in `voters` votes.
    function vote(uint8 voters, uint256 proposalSeed) external {
        if (proposals == 0) return;
        // mostly the latest proposal, so that tallies really reach the threshold
        uint256 id = proposalSeed % 4 != 0 ? proposals : 1 + proposalSeed % proposals;
        for (uint256 i = 0; i < actors.length && i < 8; i++) {
            if (voters & (1 << i) != 0) _vote(actors[i], id);
        }
    }

    function _vote(address actor, uint256 id) internal {
        bool good = registry.isInGoodStanding(actor);
        uint256 electorate = registry.electorate();
        vm.prank(actor);
        try registry.vote(id) {
            _changed(actor, good);
            votesBy[id][actor] += 1;
            votesCounted[id] += 1;
            if (votesBy[id][actor] > 1) votedTwice = true;
            ConsortiumRegistry.Proposal memory p = registry.getProposal(id);
            if (p.votes != votesCounted[id]) votedTwice = true;
            if (p.executed && uint256(p.votes) * 3 <= electorate * 2) admittedWithoutSupermajority = true;
        } catch {}
    }

    function card(uint256 actorSeed, uint256 targetSeed, uint8 kind, bool asRegulator) external {
        // half the time act as the regulator (genesis member 3), so cards really happen
        address actor = asRegulator ? actors[3] : _actor(actorSeed);
        bool good = registry.isInGoodStanding(actor);
        address target = _actor(targetSeed);
        vm.prank(actor);
        uint8 k = kind % 3;
        if (k == 0) {
            try registry.warn(target, bytes32(0)) { _changed(actor, good); } catch {}
        } else if (k == 1) {
            try registry.suspend(target, bytes32(0)) { _changed(actor, good); } catch {}
        } else {
            try registry.reinstate(target, bytes32(0)) { _changed(actor, good); } catch {}
        }
    }

    function setEndpoint(uint256 actorSeed) external {
        address actor = _actor(actorSeed);
        bool good = registry.isInGoodStanding(actor);
        vm.prank(actor);
        try registry.setEndpoint("http://elsewhere") { _changed(actor, good); } catch {}
    }

    // ------------------------------------------------------------ grants

    function grant(uint256 ownerSeed, uint256 granteeSeed, uint8 purposeSeed, uint32 startIn, uint32 lasts) external {
        address owner = _actor(ownerSeed);
        bool good = registry.isInGoodStanding(owner);
        uint64 notBefore = startIn % 3 == 0 ? 0 : uint64(block.timestamp + startIn % 2 days);
        uint64 expiresAt = uint64(block.timestamp + startIn % 2 days + 1 + lasts % 5 days);
        if (_grantAs(owner, _actor(granteeSeed), keccak256(abi.encode(purposeSeed % 2)),
                     DataUseAuthorization.Purpose(1 + purposeSeed % 5), notBefore, expiresAt)) {
            grantsMade += 1;
            _changed(owner, good);
        }
    }

    function revoke(uint256 actorSeed, uint256 grantSeed) external {
        if (grantsMade == 0) return;
        address actor = _actor(actorSeed);
        bool good = registry.isInGoodStanding(actor);
        uint256 id = 1 + grantSeed % grantsMade;
        // mostly the owner revokes; sometimes someone else tries
        if (actorSeed % 4 != 0) {
            actor = auth.getGrant(id).owner;
            good = registry.isInGoodStanding(actor);
        }
        vm.prank(actor);
        try auth.revoke(id) { _changed(actor, good); } catch {}
    }

    function recordAccess(uint256 actorSeed, uint256 grantSeed) external {
        if (grantsMade == 0) return;
        address actor = _actor(actorSeed);
        bool good = registry.isInGoodStanding(actor);
        vm.prank(actor);
        try auth.recordAccess(1 + grantSeed % grantsMade, keccak256("q"), 1) { _changed(actor, good); } catch {}
    }

    // ------------------------------------------------------------ evidence

    function anchor(uint256 actorSeed, uint8 rootSeed, uint8 batchSeed, uint8 size) external {
        address actor = _actor(actorSeed);
        bool good = registry.isInGoodStanding(actor);
        bytes32 root = keccak256(abi.encode("root", rootSeed % 8));     // few roots: collisions are the point
        bytes32 batchId = keccak256(abi.encode("batch", batchSeed % 8));
        uint64 leaves = 1 + uint64(size);
        vm.prank(actor);
        try evidence.anchorBatch(root, leaves, batchId, bytes32(0)) {
            _changed(actor, good);
            bytes32 key = keccak256(abi.encode(actor, root));
            if (firstBatchId[key] != bytes32(0)) {
                rootOverwritten = true;  // the same submitter anchored the same root twice
            } else {
                firstBatchId[key] = batchId;
                firstSize[key] = leaves;
                anchoredKeys.push(key);
                keySubmitter[key] = actor;
                keyRoot[key] = root;
            }
        } catch {}
    }

    function claimStep(uint256 actorSeed, uint8 claimSeed, uint8 stepSeed) external {
        address actor = _actor(actorSeed);
        bool good = registry.isInGoodStanding(actor);
        vm.prank(actor);
        try evidence.recordClaimStep(keccak256(abi.encode(claimSeed % 4)), EvidenceRegistry.ClaimStep(1 + stepSeed % 6),
                                     bytes32(0), 0) {
            _changed(actor, good);
        } catch {}
    }
}
