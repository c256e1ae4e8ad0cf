// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./MemberGated.sol";
import "./EvidenceRegistry.sol";
import "./ClaimPayouts.sol";

/// @title A consortium risk pool: members share confirmed losses by an agreed ratio, capped per period.
/// @notice A loss counts only when the chain already confirms it: the insurer's claim evidence root is
///         anchored on EvidenceRegistry, and the claim's lifecycle there reached APPROVED (or PAID), or it
///         was REJECTED with a fraud finding (the finding report's hash is recorded here). Each claim is
///         counted once, in one pool. The shared amount is split by the pool's ratio with the largest
///         remainder rule (ties to the lower position), so the shares sum to it exactly. Money moves off
///         chain: each member records its payment of its share to the insurer with a payment reference,
///         and the insurer confirms receipt. A suspended member can neither pay (contribute) nor be paid.
///         A claim another payout scheme (MutualAid) already pays is refused: both reserve the claim on ClaimPayouts.
contract RiskPool is MemberGated {
    enum LossKind { NONE, APPROVED_CLAIM, FRAUD_FINDING }
    enum PaymentState { NONE, OWED, RECORDED, CONFIRMED }

    struct Pool {
        address opener;
        uint64 openedAt;
        uint64 periodSeconds;
        uint128 capPerPeriod;
        uint32 ratioVersion;
        uint32 ratioProposal;
        bool active;
    }

    struct Loss {
        bytes32 poolId;
        address insurer;
        bytes32 claimIdHash;
        LossKind kind;
        uint128 reported;
        uint128 shared;
        uint64 period;
        uint32 ratioVersion;
        bytes32 findingHash;
    }

    uint256 public constant MAX_POOL_MEMBERS = 16;

    error PoolExists(bytes32 poolId);
    error UnknownPool(bytes32 poolId);
    error PoolNotActive(bytes32 poolId);
    error BadPoolTerms();
    error NotPoolMember(bytes32 poolId, address account);
    error AlreadyJoined(bytes32 poolId, address account);
    error UnknownRatioProposal(bytes32 poolId, uint32 proposal);
    error AlreadyApproved(bytes32 poolId, uint32 proposal, address account);
    error EvidenceNotAnchored(address insurer, bytes32 root);
    error ClaimNotConfirmed(bytes32 claimKey, EvidenceRegistry.ClaimStep step);
    error LossAlreadyCounted(bytes32 claimKey);
    error ClaimPaidByOtherScheme(bytes32 claimKey, address scheme);
    error EmptyLoss();
    error PeriodCapReached(bytes32 poolId, uint64 period);
    error UnknownLoss(bytes32 lossId);
    error NothingOwed(bytes32 lossId, address payer);
    error PaymentNotRecorded(bytes32 lossId, address payer);
    error NotLossInsurer(bytes32 lossId, address account);
    error PayeeNotInGoodStanding(address payee);
    error EmptyPaymentRef();

    event PoolOpened(bytes32 indexed poolId, address indexed opener, address[] members, uint32[] weights,
                     uint128 capPerPeriod, uint64 periodSeconds);
    event PoolJoined(bytes32 indexed poolId, address indexed member);
    event PoolActivated(bytes32 indexed poolId);
    event RatioProposed(bytes32 indexed poolId, uint32 indexed proposal, address indexed proposer, uint32[] weights);
    event RatioApproved(bytes32 indexed poolId, uint32 indexed proposal, address indexed member);
    event RatioChanged(bytes32 indexed poolId, uint32 version, uint32[] weights);
    event LossShared(bytes32 indexed lossId, bytes32 indexed poolId, address indexed insurer, Loss loss, bytes32 evidenceRoot);
    event ShareAssigned(bytes32 indexed lossId, address indexed member, uint128 amount);
    event ContributionRecorded(bytes32 indexed lossId, address indexed payer, address indexed payee, uint128 amount, bytes32 paymentRef);
    event ContributionConfirmed(bytes32 indexed lossId, address indexed payer, address indexed payee, uint128 amount);

    EvidenceRegistry public immutable evidence;
    ClaimPayouts public immutable payouts;

    mapping(bytes32 => Pool) private _pools;
    mapping(bytes32 => address[]) private _members;
    mapping(bytes32 => uint32[]) private _weights;
    mapping(bytes32 => mapping(address => bool)) private _listed;
    mapping(bytes32 => mapping(address => bool)) private _joined;
    mapping(bytes32 => uint256) private _joinedCount;
    /// @dev poolId => proposal => proposed weights, and who approved it
    mapping(bytes32 => mapping(uint32 => uint32[])) private _proposed;
    mapping(bytes32 => mapping(uint32 => mapping(address => bool))) private _approved;
    mapping(bytes32 => mapping(uint32 => uint256)) private _approvals;
    /// @dev poolId => period => amount shared in it
    mapping(bytes32 => mapping(uint64 => uint128)) private _sharedIn;
    /// @dev lossId (the claim key on EvidenceRegistry) => loss; a claim is counted once in any pool
    mapping(bytes32 => Loss) private _losses;
    mapping(bytes32 => mapping(address => uint128)) private _shareOf;
    mapping(bytes32 => mapping(address => PaymentState)) private _payment;

    constructor(IConsortiumRegistry registry_, EvidenceRegistry evidence_, ClaimPayouts payouts_) MemberGated(registry_) {
        evidence = evidence_;
        payouts = payouts_;
    }

    modifier onlyPoolMember(bytes32 poolId) {
        if (!_listed[poolId][msg.sender]) revert NotPoolMember(poolId, msg.sender);
        _;
    }

    /// @notice Open pool `poolId` among `members` (the caller among them) sharing losses by `weights`,
    ///         at most `capPerPeriod` per period of `periodSeconds`. Every other member must join before
    ///         the pool takes losses: nobody is put into a pool without its own transaction.
    function openPool(bytes32 poolId, address[] calldata members, uint32[] calldata weights, uint128 capPerPeriod,
                      uint64 periodSeconds) external onlyGoodStanding {
        if (_pools[poolId].opener != address(0)) revert PoolExists(poolId);
        if (poolId == bytes32(0) || members.length < 2 || members.length > MAX_POOL_MEMBERS || capPerPeriod == 0
            || periodSeconds == 0) revert BadPoolTerms();
        _checkWeights(weights, members.length);
        bool callerListed = false;
        for (uint256 i = 0; i < members.length; i++) {
            address m = members[i];
            if (_listed[poolId][m]) revert BadPoolTerms();  // listed twice
            _requireGoodStanding(m);
            _listed[poolId][m] = true;
            if (m == msg.sender) callerListed = true;
        }
        if (!callerListed) revert NotPoolMember(poolId, msg.sender);
        _pools[poolId] = Pool(msg.sender, uint64(block.timestamp), periodSeconds, capPerPeriod, 1, 0, false);
        _members[poolId] = members;
        _weights[poolId] = weights;
        emit PoolOpened(poolId, msg.sender, members, weights, capPerPeriod, periodSeconds);
        _join(poolId, msg.sender);
    }

    /// @notice Join a pool one is listed in; the pool becomes active when every listed member has joined.
    function joinPool(bytes32 poolId) external onlyGoodStanding onlyPoolMember(poolId) {
        if (_joined[poolId][msg.sender]) revert AlreadyJoined(poolId, msg.sender);
        _join(poolId, msg.sender);
    }

    /// @notice Propose a new ratio (one weight per member, in the pool's member order); the proposer approves it.
    ///         It takes effect, for losses reported afterwards, once every member has approved it.
    function proposeRatio(bytes32 poolId, uint32[] calldata weights) external onlyGoodStanding onlyPoolMember(poolId)
        returns (uint32 proposal)
    {
        Pool storage p = _activePool(poolId);
        _checkWeights(weights, _members[poolId].length);
        proposal = ++p.ratioProposal;
        _proposed[poolId][proposal] = weights;
        emit RatioProposed(poolId, proposal, msg.sender, weights);
        _approveRatio(poolId, proposal);
    }

    /// @notice Approve ratio proposal `proposal` of pool `poolId` (unanimity: the ratio is what all agreed).
    function approveRatio(bytes32 poolId, uint32 proposal) external onlyGoodStanding onlyPoolMember(poolId) {
        Pool storage p = _activePool(poolId);
        // Only the latest proposal can be approved: an older one must not take effect after a newer one.
        if (proposal != p.ratioProposal || _proposed[poolId][proposal].length == 0) revert UnknownRatioProposal(poolId, proposal);
        if (_approved[poolId][proposal][msg.sender]) revert AlreadyApproved(poolId, proposal, msg.sender);
        _approveRatio(poolId, proposal);
    }

    /// @notice Report a confirmed loss on one of the caller's claims and split it among the pool's members.
    /// @param claimIdHash the claim's id hash as on EvidenceRegistry (the claim is the caller's own)
    /// @param amount the loss in the smallest currency unit; what exceeds the period's remaining cap is not shared
    /// @param evidenceRoot an evidence batch root the caller anchored for this claim
    /// @param findingHash hash of the fraud finding report: required when the claim was REJECTED, else zero or a note
    /// @return lossId the claim key, under which the loss, its shares and payments are recorded
    function reportLoss(bytes32 poolId, bytes32 claimIdHash, uint128 amount, bytes32 evidenceRoot, bytes32 findingHash)
        external onlyGoodStanding onlyPoolMember(poolId) returns (bytes32 lossId)
    {
        Pool storage p = _activePool(poolId);
        if (amount == 0) revert EmptyLoss();
        lossId = evidence.claimKey(msg.sender, claimIdHash);
        if (_losses[lossId].insurer != address(0)) revert LossAlreadyCounted(lossId);
        address other = payouts.paidBy(lossId);
        if (other != address(0)) revert ClaimPaidByOtherScheme(lossId, other);
        if (!evidence.isAnchored(msg.sender, evidenceRoot)) revert EvidenceNotAnchored(msg.sender, evidenceRoot);
        LossKind kind = _confirmedKind(lossId, evidence.getClaim(msg.sender, claimIdHash).step, findingHash);

        Loss storage l = _losses[lossId];
        (l.poolId, l.insurer, l.claimIdHash, l.kind, l.reported) = (poolId, msg.sender, claimIdHash, kind, amount);
        (l.ratioVersion, l.findingHash) = (p.ratioVersion, findingHash);
        _applyCap(p, poolId, l);
        emit LossShared(lossId, poolId, msg.sender, l, evidenceRoot);
        _assignShares(lossId, poolId, l.shared);
        payouts.reserve(lossId);  // last: reverts the whole report if another scheme took the claim meanwhile
    }

    /// @notice Record that the caller paid its share of loss `lossId` to the insurer, off chain, under `paymentRef`.
    function recordContribution(bytes32 lossId, bytes32 paymentRef) external onlyGoodStanding {
        Loss storage l = _loss(lossId);
        if (paymentRef == bytes32(0)) revert EmptyPaymentRef();
        if (_payment[lossId][msg.sender] != PaymentState.OWED) revert NothingOwed(lossId, msg.sender);
        if (!registry.isInGoodStanding(l.insurer)) revert PayeeNotInGoodStanding(l.insurer);
        _payment[lossId][msg.sender] = PaymentState.RECORDED;
        emit ContributionRecorded(lossId, msg.sender, l.insurer, _shareOf[lossId][msg.sender], paymentRef);
    }

    /// @notice The insurer of loss `lossId` confirms it received `payer`'s recorded contribution.
    function confirmContribution(bytes32 lossId, address payer) external onlyGoodStanding {
        Loss storage l = _loss(lossId);
        if (l.insurer != msg.sender) revert NotLossInsurer(lossId, msg.sender);
        if (_payment[lossId][payer] != PaymentState.RECORDED) revert PaymentNotRecorded(lossId, payer);
        _payment[lossId][payer] = PaymentState.CONFIRMED;
        emit ContributionConfirmed(lossId, payer, msg.sender, _shareOf[lossId][payer]);
    }

    /// @notice Split `amount` by `weights` with the largest remainder rule, ties to the lower position;
    ///         the shares sum to `amount` exactly (privacy/apportion.py computes the same).
    function apportion(uint128 amount, uint32[] memory weights) public pure returns (uint128[] memory shares) {
        uint256 n = weights.length;
        uint256 total = 0;
        for (uint256 i = 0; i < n; i++) total += weights[i];
        shares = new uint128[](n);
        uint256[] memory remainders = new uint256[](n);
        uint256 given = 0;
        for (uint256 i = 0; i < n; i++) {
            uint256 exact = uint256(amount) * weights[i];  // < 2**160: no overflow
            shares[i] = uint128(exact / total);
            remainders[i] = exact % total;
            given += shares[i];
        }
        bool[] memory topped = new bool[](n);
        for (uint256 left = amount - given; left > 0; left--) {  // left < n
            uint256 best = n;
            for (uint256 i = 0; i < n; i++) {
                if (!topped[i] && (best == n || remainders[i] > remainders[best])) best = i;
            }
            topped[best] = true;
            shares[best] += 1;
        }
    }

    /// @notice Pool terms and state.
    function getPool(bytes32 poolId) external view returns (Pool memory pool, address[] memory members, uint32[] memory weights) {
        pool = _pools[poolId];
        if (pool.opener == address(0)) revert UnknownPool(poolId);
        return (pool, _members[poolId], _weights[poolId]);
    }

    /// @notice The weights of ratio proposal `proposal` and how many members approved it.
    function getRatioProposal(bytes32 poolId, uint32 proposal) external view returns (uint32[] memory weights, uint256 approvals) {
        return (_proposed[poolId][proposal], _approvals[poolId][proposal]);
    }

    /// @notice The period a timestamp falls in, and what the pool shared in that period so far.
    function periodOf(bytes32 poolId, uint64 timestamp) public view returns (uint64 period, uint128 shared) {
        Pool storage p = _pools[poolId];
        if (p.opener == address(0)) revert UnknownPool(poolId);
        period = timestamp <= p.openedAt ? 0 : uint64((timestamp - p.openedAt) / p.periodSeconds);
        shared = _sharedIn[poolId][period];
    }

    /// @notice A loss, one member's share of it and the state of that member's payment.
    function getLoss(bytes32 lossId) external view returns (Loss memory) {
        return _loss(lossId);
    }

    function shareOf(bytes32 lossId, address member) external view returns (uint128 amount, PaymentState state) {
        return (_shareOf[lossId][member], _payment[lossId][member]);
    }

    // ------------------------------------------------------------------ internals

    function _join(bytes32 poolId, address member) internal {
        _joined[poolId][member] = true;
        uint256 count = ++_joinedCount[poolId];
        emit PoolJoined(poolId, member);
        if (count == _members[poolId].length) {
            _pools[poolId].active = true;
            emit PoolActivated(poolId);
        }
    }

    /// @dev Share what fits under the period's cap: the rest of the loss stays with the insurer.
    function _applyCap(Pool storage p, bytes32 poolId, Loss storage l) internal {
        uint64 period = uint64((block.timestamp - p.openedAt) / p.periodSeconds);
        uint128 used = _sharedIn[poolId][period];
        if (used >= p.capPerPeriod) revert PeriodCapReached(poolId, period);
        uint128 room = p.capPerPeriod - used;
        uint128 shared = l.reported < room ? l.reported : room;
        _sharedIn[poolId][period] = used + shared;
        (l.period, l.shared) = (period, shared);
    }

    function _assignShares(bytes32 lossId, bytes32 poolId, uint128 shared) internal {
        address[] storage members = _members[poolId];
        uint128[] memory shares = apportion(shared, _weights[poolId]);
        for (uint256 i = 0; i < members.length; i++) {
            address m = members[i];
            _shareOf[lossId][m] = shares[i];
            // The insurer bears its own share; a zero share is owed by nobody.
            _payment[lossId][m] = m == msg.sender || shares[i] == 0 ? PaymentState.CONFIRMED : PaymentState.OWED;
            emit ShareAssigned(lossId, m, shares[i]);
        }
    }

    function _approveRatio(bytes32 poolId, uint32 proposal) internal {
        _approved[poolId][proposal][msg.sender] = true;
        uint256 approvals = ++_approvals[poolId][proposal];
        emit RatioApproved(poolId, proposal, msg.sender);
        if (approvals == _members[poolId].length) {
            uint32[] storage weights = _proposed[poolId][proposal];
            _weights[poolId] = weights;
            uint32 version = ++_pools[poolId].ratioVersion;
            emit RatioChanged(poolId, version, weights);
        }
    }

    function _activePool(bytes32 poolId) internal view returns (Pool storage p) {
        p = _pools[poolId];
        if (p.opener == address(0)) revert UnknownPool(poolId);
        if (!p.active) revert PoolNotActive(poolId);
    }

    function _loss(bytes32 lossId) internal view returns (Loss storage l) {
        l = _losses[lossId];
        if (l.insurer == address(0)) revert UnknownLoss(lossId);
    }

    function _checkWeights(uint32[] calldata weights, uint256 members) internal pure {
        if (weights.length != members) revert BadPoolTerms();
        for (uint256 i = 0; i < weights.length; i++) {
            if (weights[i] == 0) revert BadPoolTerms();
        }
    }

    function _confirmedKind(bytes32 claimKey, EvidenceRegistry.ClaimStep step, bytes32 findingHash)
        internal pure returns (LossKind)
    {
        if (step == EvidenceRegistry.ClaimStep.APPROVED || step == EvidenceRegistry.ClaimStep.PAID) return LossKind.APPROVED_CLAIM;
        if (step == EvidenceRegistry.ClaimStep.REJECTED && findingHash != bytes32(0)) return LossKind.FRAUD_FINDING;
        revert ClaimNotConfirmed(claimKey, step);
    }
}
