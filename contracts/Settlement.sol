// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./MemberGated.sol";

/// @title Revenue-share agreements, period statements and their settlement (动态分成, automatic settlement).
/// @notice An agreement between a payer and its data providers declares the share formula: base commission
///         and data-value share (basis points of the attributable premium the payer declares), and weights for
///         traffic contribution, data value and service cost, each read from a stated source. After a period
///         ends, any party posts the statement: the hash of its inputs (metered from access records and
///         statistics contributions already on chain, plus the figures declared here) and the amount owed to
///         each provider, computed off chain by one deterministic function that every party re-runs.
///         Each party confirms or disputes within the window; a confirmed statement is paid by an off-chain
///         payment reference the payer records and the payee confirms; the period then settles, once.
/// @dev Gas per statement scales with the number of providers, never with the number of accesses metered.
contract Settlement is MemberGated {
    /// @notice Where a weighted input comes from: metered from the chain, or declared for the period.
    enum Source { ACCESSES, ROWS, CONTRIBUTIONS, DECLARED }
    /// @notice Figures declared per period and provider: PREMIUM and VALUE by the payer, TRAFFIC and COST by the provider.
    enum Figure { PREMIUM, TRAFFIC, VALUE, COST }
    enum AgreementState { NONE, PROPOSED, ACTIVE }
    enum StatementState { NONE, ISSUED, DISPUTED, CONFIRMED, SETTLED }

    struct Formula {
        uint16 baseCommissionBps;   // of each provider's attributable premium
        uint16 dataValueShareBps;   // of the total attributable premium, split by the weighted score
        uint16 trafficWeightBps;    // the three weights sum to 10 000
        uint16 valueWeightBps;
        uint16 costWeightBps;
        Source trafficSource;
        Source valueSource;
        Source costSource;
    }

    struct Agreement {
        address payer;
        AgreementState state;
        uint64 periodStart;
        uint64 periodSeconds;
        uint64 disputeWindow;
        uint32 acceptances;
        Formula formula;
        address[] providers;
    }

    struct Statement {
        StatementState state;
        uint32 revision;
        uint32 confirmations;
        uint32 unpaid;              // lines with a positive amount not yet confirmed received
        uint64 issuedAt;
        bytes32 inputsHash;
        uint256 total;
        address issuer;
    }

    error UnknownAgreement(uint256 agreementId);
    error NotParty(uint256 agreementId, address caller);
    error BadFormula();
    error BadProviders();
    error AgreementNotActive(uint256 agreementId);
    error AlreadyAccepted(uint256 agreementId, address party);
    error PeriodNotEnded(uint256 agreementId, uint64 period);
    error NotDeclarer(Figure figure, address caller);
    error FigureAlreadyDeclared(uint256 agreementId, uint64 period, address provider, Figure figure);
    error StatementExists(uint256 agreementId, uint64 period, StatementState state);
    error WrongStatementState(uint256 agreementId, uint64 period, StatementState state);
    error LengthMismatch();
    error WindowClosed(uint256 agreementId, uint64 period);
    error AlreadyConfirmed(uint256 agreementId, uint64 period, address party);
    error NothingToPay(uint256 agreementId, uint64 period, address payee);
    error PaymentAlreadyRecorded(uint256 agreementId, uint64 period, address payee);
    error NoPaymentRecorded(uint256 agreementId, uint64 period, address payee);
    error PayeeNotInGoodStanding(address payee);

    event AgreementProposed(uint256 indexed agreementId, address indexed payer, address indexed proposer, address[] providers,
                            Formula formula, uint64 periodStart, uint64 periodSeconds, uint64 disputeWindow);
    event AgreementAccepted(uint256 indexed agreementId, address indexed party);
    event AgreementActivated(uint256 indexed agreementId);
    event FigureDeclared(uint256 indexed agreementId, uint64 indexed period, address indexed provider, Figure figure,
                         uint256 value, bytes32 evidenceHash, address declarer);
    event StatementIssued(uint256 indexed agreementId, uint64 indexed period, address indexed issuer, uint32 revision,
                          bytes32 inputsHash, uint256 total, uint256[] amounts);
    event StatementConfirmed(uint256 indexed agreementId, uint64 indexed period, address indexed party, uint32 revision);
    event StatementDisputed(uint256 indexed agreementId, uint64 indexed period, address indexed party, uint32 revision,
                            bytes32 reasonHash);
    event PaymentRecorded(uint256 indexed agreementId, uint64 indexed period, address indexed payee, uint256 amount,
                          bytes32 paymentRef);
    event PaymentReceived(uint256 indexed agreementId, uint64 indexed period, address indexed payee, uint256 amount);
    event PeriodSettled(uint256 indexed agreementId, uint64 indexed period, uint256 total);

    Agreement[] private _agreements;
    mapping(uint256 => mapping(address => bool)) private _accepted;
    // (agreement, period, provider, figure) => declared value + 1 (0 = not declared)
    mapping(bytes32 => uint256) private _figures;
    mapping(uint256 => mapping(uint64 => Statement)) private _statements;
    mapping(uint256 => mapping(uint64 => uint256[])) private _amounts;
    // (agreement, period, revision, party) => confirmed
    mapping(bytes32 => bool) private _confirmed;
    // (agreement, period, payee) => 1 payment recorded, 2 payment received
    mapping(bytes32 => uint8) private _payments;

    constructor(IConsortiumRegistry registry_) MemberGated(registry_) {}

    // ---------------------------------------------------------------- agreements

    /// @notice Propose an agreement; the proposer must be a party and accepts it by proposing.
    /// @param providers the data providers paid under it (distinct members, not the payer); their order is the statement's
    /// @param periodStart start of period 0; period p covers [periodStart + p*periodSeconds, + periodSeconds)
    /// @param disputeWindow seconds after a statement is issued in which parties confirm or dispute it
    function proposeAgreement(address payer, address[] calldata providers, Formula calldata formula, uint64 periodStart,
                              uint64 periodSeconds, uint64 disputeWindow) external onlyGoodStanding returns (uint256 agreementId) {
        uint256 n = providers.length;
        if (n == 0 || n > 256) revert BadProviders();
        if (uint256(formula.trafficWeightBps) + formula.valueWeightBps + formula.costWeightBps != 10_000
            || formula.baseCommissionBps > 10_000 || formula.dataValueShareBps > 10_000) revert BadFormula();
        if (periodSeconds == 0 || disputeWindow == 0) revert BadFormula();
        if (!registry.isMember(payer)) revert NotMember(payer);
        for (uint256 i = 0; i < n; i++) {
            if (providers[i] == payer || !registry.isMember(providers[i])) revert BadProviders();
            for (uint256 j = 0; j < i; j++) {
                if (providers[j] == providers[i]) revert BadProviders();
            }
        }
        _agreements.push();
        agreementId = _agreements.length;
        Agreement storage a = _agreements[agreementId - 1];
        a.payer = payer;
        a.state = AgreementState.PROPOSED;
        a.periodStart = periodStart;
        a.periodSeconds = periodSeconds;
        a.disputeWindow = disputeWindow;
        a.formula = formula;
        a.providers = providers;
        if (!_isParty(a, msg.sender)) revert NotParty(agreementId, msg.sender);
        emit AgreementProposed(agreementId, payer, msg.sender, providers, formula, periodStart, periodSeconds, disputeWindow);
        _accept(agreementId, a, msg.sender);
    }

    /// @notice Accept a proposed agreement; it is active once every party has accepted.
    function acceptAgreement(uint256 agreementId) external onlyGoodStanding {
        Agreement storage a = _agreement(agreementId);
        if (!_isParty(a, msg.sender)) revert NotParty(agreementId, msg.sender);
        if (_accepted[agreementId][msg.sender]) revert AlreadyAccepted(agreementId, msg.sender);
        _accept(agreementId, a, msg.sender);
    }

    // ---------------------------------------------------------------- figures

    /// @notice Declare a figure for one provider and period, with the hash of the evidence behind it; write-once.
    /// @dev PREMIUM (attributable premium) and VALUE are declared by the payer, TRAFFIC and COST by the provider itself.
    function declareFigure(uint256 agreementId, uint64 period, address provider, Figure figure, uint256 value,
                           bytes32 evidenceHash) external onlyGoodStanding {
        Agreement storage a = _activeAgreement(agreementId);
        if (!_isProvider(a, provider)) revert NotParty(agreementId, provider);
        address declarer = (figure == Figure.PREMIUM || figure == Figure.VALUE) ? a.payer : provider;
        if (msg.sender != declarer) revert NotDeclarer(figure, msg.sender);
        StatementState s = _statements[agreementId][period].state;
        if (s != StatementState.NONE) revert StatementExists(agreementId, period, s);
        bytes32 key = keccak256(abi.encode(agreementId, period, provider, figure));
        if (_figures[key] != 0) revert FigureAlreadyDeclared(agreementId, period, provider, figure);
        _figures[key] = value + 1;
        emit FigureDeclared(agreementId, period, provider, figure, value, evidenceHash, msg.sender);
    }

    // ---------------------------------------------------------------- statements

    /// @notice Post a period's statement: the inputs' hash and the amount owed to each provider (in the agreement's
    ///         provider order). A party issues it after the period has ended; a disputed one may be issued again.
    function issueStatement(uint256 agreementId, uint64 period, bytes32 inputsHash, uint256[] calldata amounts)
        external
        onlyGoodStanding
    {
        Agreement storage a = _activeAgreement(agreementId);
        if (!_isParty(a, msg.sender)) revert NotParty(agreementId, msg.sender);
        if (block.timestamp < periodEnd(agreementId, period)) revert PeriodNotEnded(agreementId, period);
        if (amounts.length != a.providers.length) revert LengthMismatch();
        Statement storage s = _statements[agreementId][period];
        bool lapsed = s.state == StatementState.ISSUED && block.timestamp >= uint256(s.issuedAt) + a.disputeWindow;
        if (s.state != StatementState.NONE && s.state != StatementState.DISPUTED && !lapsed) {
            revert StatementExists(agreementId, period, s.state);
        }
        uint256 total = 0;
        uint32 positive = 0;
        for (uint256 i = 0; i < amounts.length; i++) {
            total += amounts[i];
            if (amounts[i] > 0) positive++;
        }
        s.state = StatementState.ISSUED;
        s.revision += 1;
        s.confirmations = 0;
        s.unpaid = positive;
        s.issuedAt = uint64(block.timestamp);
        s.inputsHash = inputsHash;
        s.total = total;
        s.issuer = msg.sender;
        _amounts[agreementId][period] = amounts;
        emit StatementIssued(agreementId, period, msg.sender, s.revision, inputsHash, total, amounts);
    }

    /// @notice Confirm the current statement within the window; confirmed by every party, it becomes payable.
    function confirmStatement(uint256 agreementId, uint64 period) external onlyGoodStanding {
        (Agreement storage a, Statement storage s) = _openStatement(agreementId, period);
        bytes32 key = keccak256(abi.encode(agreementId, period, s.revision, msg.sender));
        if (_confirmed[key]) revert AlreadyConfirmed(agreementId, period, msg.sender);
        _confirmed[key] = true;
        s.confirmations += 1;
        emit StatementConfirmed(agreementId, period, msg.sender, s.revision);
        if (s.confirmations == a.providers.length + 1) {
            s.state = StatementState.CONFIRMED;
            if (s.unpaid == 0) _settle(agreementId, period, s);
        }
    }

    /// @notice Dispute the current statement within the window; a disputed statement never settles (issue a new one).
    function disputeStatement(uint256 agreementId, uint64 period, bytes32 reasonHash) external onlyGoodStanding {
        (, Statement storage s) = _openStatement(agreementId, period);
        s.state = StatementState.DISPUTED;
        emit StatementDisputed(agreementId, period, msg.sender, s.revision, reasonHash);
    }

    // ---------------------------------------------------------------- payments

    /// @notice The payer records the off-chain payment (its reference's hash) of one provider's confirmed amount.
    function recordPayment(uint256 agreementId, uint64 period, address payee, bytes32 paymentRef) external onlyGoodStanding {
        Agreement storage a = _agreement(agreementId);
        if (msg.sender != a.payer) revert NotParty(agreementId, msg.sender);
        Statement storage s = _statements[agreementId][period];
        if (s.state != StatementState.CONFIRMED) revert WrongStatementState(agreementId, period, s.state);
        if (!registry.isInGoodStanding(payee)) revert PayeeNotInGoodStanding(payee);
        uint256 amount = _amountOf(a, agreementId, period, payee);
        if (amount == 0) revert NothingToPay(agreementId, period, payee);
        bytes32 key = keccak256(abi.encode(agreementId, period, payee));
        if (_payments[key] != 0) revert PaymentAlreadyRecorded(agreementId, period, payee);
        _payments[key] = 1;
        emit PaymentRecorded(agreementId, period, payee, amount, paymentRef);
    }

    /// @notice The payee confirms it received the recorded payment; the last confirmation settles the period.
    function confirmPayment(uint256 agreementId, uint64 period) external onlyGoodStanding {
        Agreement storage a = _agreement(agreementId);
        Statement storage s = _statements[agreementId][period];
        if (s.state != StatementState.CONFIRMED) revert WrongStatementState(agreementId, period, s.state);
        bytes32 key = keccak256(abi.encode(agreementId, period, msg.sender));
        if (_payments[key] != 1) revert NoPaymentRecorded(agreementId, period, msg.sender);
        _payments[key] = 2;
        s.unpaid -= 1;
        emit PaymentReceived(agreementId, period, msg.sender, _amountOf(a, agreementId, period, msg.sender));
        if (s.unpaid == 0) _settle(agreementId, period, s);
    }

    // ---------------------------------------------------------------- views

    /// @notice An agreement by id.
    function getAgreement(uint256 agreementId) external view returns (Agreement memory) {
        return _agreement(agreementId);
    }

    /// @notice Number of agreements ever proposed.
    function agreementCount() external view returns (uint256) {
        return _agreements.length;
    }

    /// @notice A period's statement (state NONE when none was issued).
    function getStatement(uint256 agreementId, uint64 period) external view returns (Statement memory) {
        return _statements[agreementId][period];
    }

    /// @notice The amounts of a period's current statement, in provider order.
    function statementAmounts(uint256 agreementId, uint64 period) external view returns (uint256[] memory) {
        return _amounts[agreementId][period];
    }

    /// @notice A declared figure: (declared, value).
    function figure(uint256 agreementId, uint64 period, address provider, Figure f) external view returns (bool, uint256) {
        uint256 stored = _figures[keccak256(abi.encode(agreementId, period, provider, f))];
        return (stored != 0, stored == 0 ? 0 : stored - 1);
    }

    /// @notice Payment state of one payee: 0 none, 1 recorded by the payer, 2 received by the payee.
    function paymentState(uint256 agreementId, uint64 period, address payee) external view returns (uint8) {
        return _payments[keccak256(abi.encode(agreementId, period, payee))];
    }

    /// @notice Whether `party` confirmed the current revision of a period's statement.
    function hasConfirmed(uint256 agreementId, uint64 period, address party) external view returns (bool) {
        return _confirmed[keccak256(abi.encode(agreementId, period, _statements[agreementId][period].revision, party))];
    }

    /// @notice First second after period `period` of an agreement.
    function periodEnd(uint256 agreementId, uint64 period) public view returns (uint256) {
        Agreement storage a = _agreement(agreementId);
        return uint256(a.periodStart) + (uint256(period) + 1) * a.periodSeconds;
    }

    // ---------------------------------------------------------------- internals

    function _accept(uint256 agreementId, Agreement storage a, address party) internal {
        _accepted[agreementId][party] = true;
        a.acceptances += 1;
        emit AgreementAccepted(agreementId, party);
        if (a.acceptances == a.providers.length + 1) {
            a.state = AgreementState.ACTIVE;
            emit AgreementActivated(agreementId);
        }
    }

    function _settle(uint256 agreementId, uint64 period, Statement storage s) internal {
        s.state = StatementState.SETTLED;
        emit PeriodSettled(agreementId, period, s.total);
    }

    function _openStatement(uint256 agreementId, uint64 period) internal view returns (Agreement storage a, Statement storage s) {
        a = _agreement(agreementId);
        if (!_isParty(a, msg.sender)) revert NotParty(agreementId, msg.sender);
        s = _statements[agreementId][period];
        if (s.state != StatementState.ISSUED) revert WrongStatementState(agreementId, period, s.state);
        if (block.timestamp >= uint256(s.issuedAt) + a.disputeWindow) revert WindowClosed(agreementId, period);
    }

    function _amountOf(Agreement storage a, uint256 agreementId, uint64 period, address payee) internal view returns (uint256) {
        uint256[] storage amounts = _amounts[agreementId][period];
        for (uint256 i = 0; i < a.providers.length; i++) {
            if (a.providers[i] == payee) return amounts[i];
        }
        return 0;
    }

    function _isProvider(Agreement storage a, address account) internal view returns (bool) {
        for (uint256 i = 0; i < a.providers.length; i++) {
            if (a.providers[i] == account) return true;
        }
        return false;
    }

    function _isParty(Agreement storage a, address account) internal view returns (bool) {
        return account == a.payer || _isProvider(a, account);
    }

    function _agreement(uint256 agreementId) internal view returns (Agreement storage) {
        if (agreementId == 0 || agreementId > _agreements.length) revert UnknownAgreement(agreementId);
        return _agreements[agreementId - 1];
    }

    function _activeAgreement(uint256 agreementId) internal view returns (Agreement storage a) {
        a = _agreement(agreementId);
        if (a.state != AgreementState.ACTIVE) revert AgreementNotActive(agreementId);
    }
}
