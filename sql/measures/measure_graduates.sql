-- measure_graduates: per school and year, graduate destinations, field match, starting
-- income and the undergraduate cut-off, from the one-row-per-graduate file.
-- 参军入伍 and 自主创业 count as employed but are neither direct employment nor study;
-- they are also counted on their own (enlisted, self-employed).
-- Output grain: one row per (year, school_code, measure_id).
with graduates as (
    select * from curated_graduates
),

per_school as (
    select
        year,
        school_code,
        count(*)::double as graduates_count,
        count(*) filter (where destination <> '待就业')::double as employed_or_studying_count,
        count(*) filter (where destination = '直接就业')::double as direct_employment_count,
        count(*) filter (where destination = '直接就业' and is_major_matched)::double
            as matched_employment_count,
        coalesce(
            sum(starting_monthly_income_yuan) filter (where destination = '直接就业'), 0
        )::double as starting_income_sum_yuan,
        count(starting_monthly_income_yuan) filter (where destination = '直接就业')::double
            as starting_income_reported_count,
        count(*) filter (where destination = '单考单招')::double as exam_track_count,
        count(*) filter (
            where destination in ('五年制转段', '自主招生', '保送', '高级工技师段')
        )::double as other_further_study_count,
        count(*) filter (where coalesce(is_undergraduate_line_reached, false))::double
            as undergraduate_line_count,
        count(*) filter (where destination = '自主创业')::double as self_employed_count,
        count(*) filter (where destination = '参军入伍')::double as enlisted_count,
        -- Optional columns (2024 contract): empty where a school's file lacks them.
        count(*) filter (
            where destination = '直接就业' and employer_location is not null
        )::double as employer_location_reported_count,
        count(*) filter (where destination = '直接就业' and employer_location = '本地')::double
            as local_employment_count,
        count(*) filter (
            where destination = '直接就业' and employer_industry is not null
        )::double as employer_industry_reported_count,
        count(*) filter (where destination = '直接就业' and employer_industry = '第一产业')::double
            as primary_industry_employment_count,
        count(*) filter (where destination = '直接就业' and employer_industry = '第二产业')::double
            as secondary_industry_employment_count,
        count(*) filter (where destination = '直接就业' and employer_industry = '第三产业')::double
            as tertiary_industry_employment_count,
        count(*) filter (where further_study_level = '本科')::double as undergraduate_entrants_count,
        count(*) filter (
            where further_study_level = '本科' and coalesce(is_undergraduate_integrated, false)
        )::double as integrated_undergraduate_entrants_count,
        count(*) filter (where coalesce(is_east_west_class, false))::double
            as east_west_graduates_count,
        count(*) filter (
            where coalesce(is_east_west_class, false) and destination = '直接就业'
            and employer_location is not null
        )::double as east_west_employment_located_count,
        count(*) filter (
            where coalesce(is_east_west_class, false) and destination = '直接就业'
            and employer_location = '本地'
        )::double as east_west_local_employment_count,
        count(*) filter (where coalesce(is_dual_certificate, false))::double
            as dual_certificate_graduates_count,
        count(*) filter (where is_dual_certificate is not null)::double
            as dual_certificate_reported_count,
        count(*) filter (where coalesce(is_1x_certificate, false))::double
            as one_x_certificate_graduates_count,
        count(*) filter (where is_1x_certificate is not null)::double
            as one_x_certificate_reported_count
    from graduates
    group by year, school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
